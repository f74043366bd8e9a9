"""Per-example predictions saved beside each run (``predictions.npz``), so every metric can be
recomputed without retraining (tlbench.utils.metrics).

For each evaluated split (``target`` test, and ``source`` test when the classes match) the file
holds ``{split}_row`` (the example's row in the split as the dataset loads it: the example id),
``{split}_label``, ``{split}_pred`` and the top-``k`` classes with their softmax probabilities
(float16). Labels are stored so a metric is recomputed from this file alone.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from tlbench.utils.metrics import classification_metrics
from tlbench.utils.atomic import atomic_write_bytes

PREDICTIONS_FILE = "predictions.npz"
TOP_K = 5


def prediction_arrays(split: str, logits: torch.Tensor, labels: torch.Tensor, k: int = TOP_K) -> dict[str, np.ndarray]:
    """The arrays of one split (see the module docstring)."""
    logits = logits.detach().float().cpu()
    k = min(k, logits.shape[1])
    probs = torch.softmax(logits, dim=1)
    top = probs.topk(k, dim=1)
    return {
        f"{split}_row": np.arange(len(logits), dtype=np.int32),
        f"{split}_label": labels.detach().cpu().numpy().astype(np.int32),
        f"{split}_pred": logits.argmax(dim=1).numpy().astype(np.int32),
        f"{split}_topk_class": top.indices.numpy().astype(np.int32),
        f"{split}_topk_prob": top.values.numpy().astype(np.float16),
    }


def save_predictions(run_dir, splits: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> dict[str, np.ndarray]:
    """``splits``: name -> (logits, labels); written atomically as ``predictions.npz``. Returns the arrays written."""
    arrays = {}
    for split, (logits, labels) in splits.items():
        arrays.update(prediction_arrays(split, logits, labels))
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(Path(run_dir) / PREDICTIONS_FILE, buffer.getvalue())
    return arrays


def load_predictions(run_dir) -> dict[str, np.ndarray] | None:
    """The saved arrays of a run, or None when it has none (results written before they were saved)."""
    path = Path(run_dir) / PREDICTIONS_FILE
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (OSError, ValueError):
        return None


def record_predictions(run_dir, target_test, target_logits, source_test, source_logits) -> dict:
    """Save the predictions of a cell's test splits and return the result fields they give:
    ``metrics`` (every metric of each split, from the arrays saved) and ``predictions_file``."""
    splits = {"target": (target_logits, target_test.y)}
    if source_logits is not None:
        splits["source"] = (source_logits, source_test.y)
    arrays = save_predictions(run_dir, splits)
    classes = {split: int(logits.shape[1]) for split, (logits, _) in splits.items()}
    return {"metrics": metrics_of(arrays, classes), "predictions_file": PREDICTIONS_FILE}


def metrics_of(arrays: dict[str, np.ndarray], classes: dict[str, int] | None = None) -> dict[str, dict]:
    """Every metric of every split in saved prediction ``arrays``."""
    out = {}
    for split in ("target", "source"):
        if f"{split}_label" in arrays:
            out[split] = classification_metrics(arrays[f"{split}_label"], arrays[f"{split}_pred"],
                                                (classes or {}).get(split))
    return out
