"""INT8 quantization of an exported model with onnxruntime's own tooling.

- Convolutional and feed-forward models (2-D images and 1-D sequence CNNs alike): static
  quantization in QDQ format, calibrated on target *training* inputs (never the test split),
  after ``quant_pre_process`` (shape inference and graph cleanup, as onnxruntime recommends).
  Weights per channel, symmetric int8; activations uint8 (fast integer kernels on x86).
- Recurrent models (a graph with LSTM/GRU/RNN nodes): dynamic quantization of the weights; the
  activations' ranges are computed at run time, which suits recurrent state better.

The choice follows the operators in the exported graph, never a plugin's name: dynamic
quantization of convolutions (ConvInteger) was measured 2.7-4.4x *slower* than fp32 for the
1-D CNN on this CPU, so only recurrent graphs take the dynamic path.

Both paths quantize a copy of the graph without value_info annotations
(``tlbench.deploy.graph.strip_debug_info``): a graph from the dynamo exporter carried one per
initializer, which made onnxruntime 1.31's dynamic quantizer fail on every LSTM/GRU. This
module imports no torch.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from pathlib import Path

import numpy as np
from tlbench.settings.train import EVAL_BATCH_SIZE

STATIC, DYNAMIC = "static-qdq", "dynamic"
CALIBRATION_BATCH = 32
# The static recipe (recorded with every INT8 result as ``int8_recipe``):
# - reduce_range: 7-bit weights. x86 CPUs without VNNI (AVX2) multiply u8 x s8 pairs into
#   saturating int16 sums; full-range weights then overflow. Measured on digits (smallcnn,
#   AVX2): 47.9% fp32 -> 17.3% int8 without, 47.1% with reduce_range.
# - calibration: onnxruntime's CalibrationMethod name (MinMax, Entropy, Percentile). Percentile
#   (ranges at the 0.001/99.999 percentiles of each activation) since 2026-12-04: with MinMax,
#   timm's resnet18 lost 7.8 points and timm's mobilenetv3 1.1; with Percentile every backbone
#   above chance stayed within 0.6 points of fp32 on digits:uci (MinMax: 8/11) and within 0.8 on the check
#   pair digits:mnist (results/benchmarks/int8_recipes*.md).
# - keep_edges: leave the first Conv and the classifier in fp32.
# - examples: calibration inputs. 128 instead of 256 gave the same INT8 test accuracy within
#   two of 359 test rows (0.6 points), up and down, for four smallcnn cells and a resnet18 cell
#   of the default grid, and cut quantization time by a third (resnet18: 2.5 s -> 1.7 s).
# benchmarks/int8_recipes.py compares recipes; switching the default is this one line.
STATIC_RECIPE = {"examples": 128, "calibration": "Percentile", "per_channel": True, "reduce_range": True, "keep_edges": False}
CALIBRATION_EXAMPLES = STATIC_RECIPE["examples"]


RECURRENT_OPS = frozenset({"LSTM", "GRU", "RNN"})


def choose_method(op_types) -> str:
    """``dynamic`` for a graph with recurrent nodes, ``static-qdq`` for everything else."""
    return DYNAMIC if RECURRENT_OPS & set(op_types) else STATIC


class _Batches:
    """A CalibrationDataReader over one array, in fixed-size batches."""

    def __init__(self, input_name: str, x: np.ndarray, batch_size: int):
        self._items = iter([{input_name: x[i : i + batch_size]} for i in range(0, len(x), batch_size)])

    def get_next(self):
        return next(self._items, None)

    def rewind(self):  # pragma: no cover - only called by some calibrators
        raise NotImplementedError


def _copy_metadata(source_path, target_path) -> None:
    """Keep the fp32 model's ``metadata_props`` (labels, preprocessing) in the INT8 file."""
    import onnx

    source = onnx.load(str(source_path), load_external_data=False)
    target = onnx.load(str(target_path))
    existing = {p.key for p in target.metadata_props}
    for prop in source.metadata_props:
        if prop.key not in existing:
            entry = target.metadata_props.add()
            entry.key, entry.value = prop.key, prop.value
    entry = target.metadata_props.add()
    entry.key = "tlbench.quantization"
    entry.value = json.dumps({"source": Path(source_path).name})
    onnx.save(target, str(target_path))


def edge_nodes(model) -> list[str]:
    """Names of the first Conv and the last Gemm/MatMul: the layers INT8 hurts most, kept in
    fp32 by the ``keep_edges`` recipe."""
    convs = [n.name for n in model.graph.node if n.op_type == "Conv"]
    heads = [n.name for n in model.graph.node if n.op_type in ("Gemm", "MatMul")]
    return [name for name in (convs[:1] + heads[-1:]) if name]


def quantize_model(
    fp32_path,
    int8_path,
    calibration: np.ndarray | None = None,
    seed: int = 0,
    recipe: dict | None = None,
) -> str:
    """Write an INT8 copy of ``fp32_path`` to ``int8_path``; returns the method used.

    ``calibration`` (model-ready float32 inputs, e.g. the target training split) is required
    for static quantization; at most ``examples`` rows, drawn with ``seed``, are used.
    ``recipe`` overrides :data:`STATIC_RECIPE` (benchmarks/int8_recipes.py compares them).
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_dynamic,
        quantize_static,
    )

    from tlbench.deploy.graph import strip_debug_info

    fp32_path, int8_path = Path(fp32_path), Path(int8_path)
    model = onnx.load(str(fp32_path))
    graph_input = model.graph.input[0]
    method = choose_method(node.op_type for node in model.graph.node)
    int8_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=int8_path.parent) as tmp:
        staged = Path(tmp) / "int8.onnx"
        clean = Path(tmp) / "clean.onnx"
        onnx.save(strip_debug_info(model), str(clean))
        prepared = Path(tmp) / "prepared.onnx"  # shape inference and graph cleanup, as onnxruntime recommends
        quant_pre_process(str(clean), str(prepared), skip_symbolic_shape=True)
        if method == STATIC:
            if calibration is None or len(calibration) == 0:
                raise ValueError("static quantization needs calibration inputs")
            recipe = {**STATIC_RECIPE, **(recipe or {})}
            rng = np.random.default_rng(seed)
            take = rng.permutation(len(calibration))[: recipe["examples"]]
            # equal batches: onnxruntime's histogram calibrators (Percentile, Entropy) stack the
            # batches' outputs and fail on a shorter last one
            batch = min(CALIBRATION_BATCH, len(take))
            take = take[: len(take) - len(take) % batch]
            calib = np.ascontiguousarray(calibration[np.sort(take)], dtype=np.float32)
            with contextlib.redirect_stdout(io.StringIO()):  # the calibrators print their progress
                quantize_static(
                    str(prepared),
                    str(staged),
                    _Batches(graph_input.name, calib, batch),
                    quant_format=QuantFormat.QDQ,
                    per_channel=recipe["per_channel"],
                    reduce_range=recipe["reduce_range"],
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                    calibrate_method=getattr(CalibrationMethod, recipe["calibration"]),
                    nodes_to_exclude=edge_nodes(onnx.load(str(prepared))) if recipe["keep_edges"] else None,
                )
        else:
            quantize_dynamic(str(prepared), str(staged), weight_type=QuantType.QInt8)
        _copy_metadata(fp32_path, staged)
        staged.replace(int8_path)
    return method


def int8_report(
    fp32_path,
    int8_path,
    *,
    calibration: np.ndarray | None,
    test_x: np.ndarray,
    test_y: np.ndarray,
    fp32_acc: float,
    latency_inputs: tuple[np.ndarray, np.ndarray],
    device: str = "cpu",
    repeats: int = 10,
    batch_size: int = EVAL_BATCH_SIZE,
    seed: int = 0,
    keep_logits: bool = False,
) -> dict:
    """Quantize, then measure the INT8 model on the same test inputs and latency inputs as fp32.

    Returns the ``int8_*`` result fields (and the INT8 test logits as ``_logits`` if asked); any
    failure becomes ``{"int8_error": ...}`` so the fp32 result of the run is never lost.
    """
    from tlbench.deploy.ort import make_session, ort_latency_ms, ort_logits

    try:
        method = quantize_model(fp32_path, int8_path, calibration, seed)
        session, _ = make_session(int8_path, device)
        out = ort_logits(session, test_x, batch_size) if len(test_y) else np.zeros((0, 1), np.float32)
        acc = float(np.mean(out.argmax(1) == test_y)) if len(test_y) else 0.0
        one, many = latency_inputs
        b1 = ort_latency_ms(session, one, repeats)
        bn = ort_latency_ms(session, many, max(3, repeats // 5), warmup=1)  # warm: it just ran the test split
    except Exception as exc:  # noqa: BLE001 - recorded, the fp32 result stands
        Path(int8_path).unlink(missing_ok=True)
        from tlbench.utils.disk import describe_failure  # a full disk can surface as a DecodeError

        return {"int8_error": describe_failure(exc, Path(int8_path).parent)}
    return {
        **({"_logits": out} if keep_logits else {}),
        "int8_method": method,
        "int8_recipe": STATIC_RECIPE if method == STATIC else {"weights": "int8", "activations": "quantized at run time"},
        "int8_path": Path(int8_path).name,
        "int8_target_acc": acc,
        "int8_acc_drop": round(fp32_acc - acc, 6),
        "int8_latency_ms": round(b1, 4),
        "int8_latency_ms_b64": round(bn, 4),
        "int8_size_mb": round(Path(int8_path).stat().st_size / 1e6, 4),
        "int8_error": None,
    }
