"""`tlbench predict MODEL.onnx INPUT...`: classify with onnxruntime alone (no torch import).

Labels and preprocessing come from the model's ``metadata_props`` (``tlbench.labels``,
``tlbench.preprocessing``), written when tlbench exported it.

Inputs:
- images (PNG/JPEG/any format Pillow reads): converted to the model's channel count, resized to
  its height x width, scaled by ``scale`` (1/255 for 8-bit) and normalised with mean/std;
- ``.npy`` arrays: model-ready inputs, already normalised, of the model's input shape (one
  example) or with a leading batch axis (several); sequence models accept any length T.

When the model carries training-input statistics (``tlbench.input_stats``), every input far
from them gets one warning line on stderr; it is still classified.
"""

from __future__ import annotations

import json
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tlbench.plugin.errors import UserError, first_line

LABELS_KEY, PREPROCESSING_KEY = "tlbench.labels", "tlbench.preprocessing"


@dataclass
class Prediction:
    """Top-k classes of one input."""

    input: str
    labels: list[str]
    probabilities: list[float]
    warning: str | None = None  # set when the input is far from the training inputs

    def as_dict(self) -> dict:
        out = {
            "input": self.input,
            "top": [{"label": l, "probability": p} for l, p in zip(self.labels, self.probabilities)],
        }
        if self.warning:
            out["warning"] = self.warning
        return out


def load_model(path):
    """(session, labels, preprocessing dict) of a tlbench ONNX model; UserError otherwise."""
    from tlbench.deploy.ort import make_session

    shown, path = str(path), Path(path)
    if shown.strip() and path.is_dir():
        raise UserError(f"model {shown!r} is a directory; give an .onnx file written by `tlbench run` or `tlbench export`")
    if not shown.strip() or not path.is_file():
        raise UserError(f"model {shown!r} does not exist; give an .onnx file written by `tlbench run` or `tlbench export`")
    try:
        session, _ = make_session(path, "cpu")
    except Exception as exc:  # onnxruntime raises its own exception types
        first = first_line(exc, typed=False) or type(exc).__name__
        raise UserError(f"{str(path)!r} is not a loadable ONNX model: {first}") from None
    meta = session.get_modelmeta().custom_metadata_map
    if LABELS_KEY not in meta or PREPROCESSING_KEY not in meta:
        raise UserError(
            f"{str(path)!r} has no tlbench metadata ({LABELS_KEY}, {PREPROCESSING_KEY}); "
            "predict needs a model exported by `tlbench run` or `tlbench export`"
        )
    try:
        labels = list(json.loads(meta[LABELS_KEY]))
        pre = json.loads(meta[PREPROCESSING_KEY])
        pre["input_shape"] = [int(d) for d in pre["input_shape"]]
    except (ValueError, KeyError, TypeError):
        raise UserError(f"{str(path)!r} has malformed tlbench metadata; re-export it with `tlbench export RUN_DIR`") from None
    return session, labels, pre


def _normalise(x: np.ndarray, pre: dict, channel_axis: int) -> np.ndarray:
    mean = np.asarray(pre["mean"], dtype=np.float32)
    std = np.asarray(pre["std"], dtype=np.float32)
    shape = [1] * x.ndim
    shape[channel_axis] = -1
    if mean.size not in (1, x.shape[channel_axis]):
        raise UserError(f"model metadata has {mean.size} mean values for {x.shape[channel_axis]} channels")
    return ((x - mean.reshape(shape)) / std.reshape(shape)).astype(np.float32)


def image_input(path: Path, pre: dict) -> np.ndarray:
    """One image file -> a normalised ``(C, H, W)`` float32 array for the model."""
    from PIL import Image, UnidentifiedImageError

    if pre.get("modality") != "image":
        raise UserError(f"{str(path)!r} is an image, but the model takes {pre.get('modality')} input; give a .npy array")
    channels, height, width = pre["input_shape"]
    try:
        with warnings.catch_warnings():
            # over Image.MAX_IMAGE_PIXELS Pillow only warns (an error at twice that): refuse both
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image = image.convert("L" if channels == 1 else "RGB")
                if image.size != (width, height):
                    image = image.resize((width, height), Image.Resampling.BILINEAR)
                pixels = np.asarray(image, dtype=np.float32)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        size = re.search(r"\((\d+) pixels\)", str(exc))
        raise UserError(
            f"{str(path)!r} is too large to decode safely ({size.group(1) + ' pixels, ' if size else ''}over Pillow's "
            f"decompression-bomb limit of {Image.MAX_IMAGE_PIXELS} pixels); resize it to {width}x{height} first"
        ) from None
    except MemoryError:
        raise UserError(f"{str(path)!r} is too large to decode in memory; resize it to {width}x{height} first") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError):
        raise UserError(f"{str(path)!r} is not a readable image (PNG/JPEG) or .npy array") from None
    pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    if pixels.shape[0] != channels:  # an RGB model given 1-channel data, or the reverse
        pixels = np.repeat(pixels.mean(axis=0, keepdims=True), channels, axis=0)
    return _normalise(pixels * float(pre.get("scale", 1.0)), pre, 0)


def array_inputs(path: Path, pre: dict) -> np.ndarray:
    """A ``.npy`` file -> a batch of model-ready inputs; the shape must fit the model."""
    from tlbench.deploy.arrays import load_npy

    x = load_npy(path)  # the header's declared size is checked against the file first
    expected = tuple(pre["input_shape"])
    if x.dtype.kind not in "fiu":
        raise UserError(f"{str(path)!r} holds {x.dtype} values; the model needs numbers")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise UserError(f"{str(path)!r} holds {bad} NaN or infinite value(s); give finite, normalised numbers")
    sequence = pre.get("modality") == "sequence"

    def fits(shape):
        if sequence:
            return len(shape) == len(expected) and shape[-1] == expected[-1] and shape[0] >= 1
        return tuple(shape) == expected

    if fits(x.shape):
        x = x[None]
    elif not (x.ndim == len(expected) + 1 and fits(x.shape[1:]) and len(x) >= 1):
        want = f"(T, {expected[-1]}) or (N, T, {expected[-1]})" if sequence else f"{expected} or (N, {', '.join(map(str, expected))})"
        raise UserError(f"{str(path)!r} has shape {tuple(x.shape)}; this model takes {want}")
    return np.ascontiguousarray(x, dtype=np.float32)


def read_inputs(paths, pre: dict) -> list[tuple[str, np.ndarray]]:
    """``(name, batch)`` per input file (a batch of one for images)."""
    out = []
    for raw in paths:
        path = Path(raw)
        if str(raw).strip() and path.is_dir():
            raise UserError(f"input {str(raw)!r} is a directory; give image files or .npy arrays")
        if not str(raw).strip() or not path.is_file():
            raise UserError(f"input {str(raw)!r} does not exist")
        if path.suffix.lower() == ".npz":
            from tlbench.deploy.arrays import NPZ_HINT

            raise UserError(f"input {str(path)!r} is {NPZ_HINT}")
        if path.suffix.lower() == ".npy":
            batch = array_inputs(path, pre)
            names = [str(path)] if len(batch) == 1 else [f"{path}[{i}]" for i in range(len(batch))]
            out.extend((name, batch[i : i + 1]) for i, name in enumerate(names))
        else:
            out.append((str(path), image_input(path, pre)[None]))
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def _training_stats(session) -> dict | None:
    """The model's training-input statistics, or None (older models, malformed entries)."""
    from tlbench.deploy.input_stats import STATS_KEY

    raw = session.get_modelmeta().custom_metadata_map.get(STATS_KEY)
    try:
        stats = json.loads(raw) if raw else None
        return stats if stats and float(stats["threshold"]) > 0 and len(stats["center"]) == len(stats["scale"]) else None
    except (ValueError, KeyError, TypeError):
        return None


def _far_warning(input_name: str, batch: np.ndarray, stats: dict | None) -> str | None:
    from tlbench.deploy.input_stats import distance, warning_line

    if stats is None:
        return None
    try:
        return warning_line(input_name, float(distance(batch, stats)[0]), stats)
    except ValueError:  # channel count differs from the statistics': nothing to compare
        return None


def predict(model_path, inputs, top_k: int = 3, warn=None) -> list[Prediction]:
    """Top-``top_k`` labels and probabilities for every input; ``warn`` (default: stderr) gets
    one line per input that is far from the training inputs."""
    warn = warn or (lambda line: print(line, file=sys.stderr))
    session, labels, pre = load_model(model_path)
    stats = _training_stats(session)
    name = session.get_inputs()[0].name
    results = []
    for input_name, batch in read_inputs(inputs, pre):
        try:
            logits = session.run(None, {name: batch})[0]
        except Exception as exc:
            raise UserError(f"the model rejected {input_name!r}: {first_line(exc, typed=False)}") from None
        if not np.isfinite(logits).all():
            raise UserError(f"the model gave non-finite outputs (NaN/inf) for {input_name!r}; check that the input is "
                            "normalised the way the model's metadata says (values far out of range overflow)")
        far = _far_warning(input_name, batch, stats)  # only for an input that gets a prediction:
        if far:                                         # a refused one gets its one error line alone
            warn(far)
        probs = softmax(logits.astype(np.float64))[0]
        order = np.argsort(-probs, kind="stable")[: max(1, top_k)]
        names = [labels[i] if i < len(labels) else str(i) for i in order]
        results.append(Prediction(input_name, names, [float(probs[i]) for i in order], far))
    return results


def render(predictions: list[Prediction], console=None) -> None:
    """A rich table: one row per input, its top-k labels with probabilities."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    k = max((len(p.labels) for p in predictions), default=1)
    table = Table(title="tlbench predict", title_justify="left")
    table.add_column("input", overflow="fold")
    for rank in range(1, k + 1):
        table.add_column(f"top-{rank}")
        table.add_column("p", justify="right")
    for p in predictions:
        cells = []
        for label, prob in zip(p.labels, p.probabilities):
            cells += [label, f"{prob:.3f}"]
        table.add_row(p.input, *cells)
    console.print(table)
