"""After training: time torch, export to ONNX, verify in onnxruntime (and a second runtime when
asked), quantize to INT8, time the runtimes, and say how long each step took.

One call per cell (:func:`deploy_cell`), from the runner; its export sequence
(:func:`export_and_check`) is also what `tlbench export` runs on a stored model. Every check
always runs; the costs are kept down by reusing what an earlier step made: the fp32 session that verified the model
times it, the torch reference logits are the ones the evaluation computed (on a CPU run; a GPU
run computes them again on the CPU), and the second runtime compares with the logits already in
hand. Batch-64 timings take one warm-up call (:data:`B64_WARMUP`, three before): every model and
session has just run the whole test split, and right after that the first batch-64 call was
measured no slower than the six after it (smallcnn; medians over 24 fp32 and 24 INT8
onnxruntime sessions and 6 torch models).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from tlbench.deploy.input_stats import STATS_KEY, input_statistics
from tlbench.deploy.onnx_export import compare_logits, export_onnx, model_size_mb, verify
from tlbench.deploy.ort import ort_latency_ms, session_settings
from tlbench.deploy.quantize import int8_report
from tlbench.execution.evaluation import eval_rows
from tlbench.execution.results import INT8_FILE, ONNX_FILE
from tlbench.plugin.errors import first_line
from tlbench.training.loop import predict_logits, synchronize
from tlbench.utils.timing import median_ms

LATENCY_BATCH = 64
B64_WARMUP = 1


class _Clock:
    """Seconds spent per named step."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    def step(self, name: str):
        clock = self

        class _Step:
            def __enter__(self):
                self.start = time.perf_counter()

            def __exit__(self, *exc):
                clock.seconds[name] = round(clock.seconds.get(name, 0.0) + time.perf_counter() - self.start, 4)

        return _Step()


def _as_numpy(x) -> np.ndarray:
    return x.cpu().numpy() if hasattr(x, "cpu") else np.asarray(x)


def second_runtime(name: str, fp32_path, int8_path, ort_logits: np.ndarray, int8_logits, x: np.ndarray,
                   labels: np.ndarray, latency_inputs, repeats: int, batch_size: int) -> dict:
    """``{name}_*`` fields: the fp32 and INT8 models against onnxruntime's logits for the same
    files (top-1 agreement, max |Δ|), their accuracy and latencies at batch 1 and 64. A model
    the runtime cannot load or run is recorded in ``{name}_error``."""
    from importlib import import_module

    runtime = import_module(f"tlbench.deploy.{name}")
    out = {f"{name}_version": runtime.version(), f"{name}_precision_hint": runtime.PRECISION_HINT, f"{name}_error": None}
    one, many = latency_inputs
    models = [("", fp32_path, ort_logits)] + ([("int8_", int8_path, int8_logits)] if int8_logits is not None else [])
    errors = []
    for tag, path, compare_to in models:
        try:
            compiled = runtime.compile_model(path)
            check = compare_logits(runtime.logits(compiled, x, batch_size), compare_to, labels)
            out.update({
                f"{name}_{tag}max_abs_diff": check["max_abs_diff"],
                f"{name}_{tag}top1_agreement": check["top1_agreement"],
                f"{name}_{tag}target_acc": check["acc"],
                f"{name}_{tag}latency_ms": round(runtime.latency_ms(compiled, one, repeats), 4),
                f"{name}_{tag}latency_ms_b64": round(runtime.latency_ms(compiled, many, max(3, repeats // 5)), 4),
            })
        except Exception as exc:  # noqa: BLE001 - a verifier's failure is recorded, the cell stands
            errors.append(f"{Path(path).name}: {first_line(exc)}")
    if errors:
        out[f"{name}_error"] = "; ".join(errors)
    return out


def export_and_check(model, test_x: torch.Tensor, test_y: torch.Tensor, onnx_path: Path, int8_path: Path | None,
                     metadata: dict, *, sequence: bool, calibration, seed: int, dynamo: bool, batch_size: int,
                     device: str, repeats: int, reference: torch.Tensor | None = None, keep_logits: bool = False,
                     clock: _Clock | None = None) -> tuple[torch.Tensor, dict, dict]:
    """The export sequence of a cell and of `tlbench export`, for the CPU ``model`` in eval mode:
    its reference logits of ``test_x`` (unless given), the input statistics of ``calibration`` in
    the metadata, ONNX export, the onnxruntime check against torch on ``device``, then INT8
    (calibrated on ``calibration``; skipped when ``int8_path`` is None). Returns (reference,
    check fields, int8 fields); the check keeps its ``_session``, both keep ``_logits`` when
    ``keep_logits``. ``clock`` times each step."""
    clock = clock or _Clock()
    if reference is None:
        with clock.step("reference"), torch.inference_mode():
            reference = predict_logits(model, test_x, batch_size)
    calib = None if calibration is None else _as_numpy(calibration)
    metadata = dict(metadata)
    if calib is not None and len(calib):
        with clock.step("input_stats"):
            metadata[STATS_KEY] = input_statistics(calib, sequence=sequence, seed=seed)
    with clock.step("export"):
        export_onnx(model, test_x[:2], onnx_path, metadata, dynamo=dynamo)
    with clock.step("verify"):
        check = verify(onnx_path, reference, test_x, test_y, device, batch_size, keep_logits=keep_logits)
    int8 = {}
    if int8_path is not None:
        x_np = test_x.numpy()
        with clock.step("int8"):
            int8 = int8_report(
                onnx_path, int8_path, calibration=calib, test_x=x_np, test_y=test_y.numpy(),
                fp32_acc=check["onnx_target_acc"], latency_inputs=(x_np[:1], x_np[:LATENCY_BATCH]), device=device,
                repeats=repeats, batch_size=batch_size, seed=seed, keep_logits=keep_logits,
            )
    return reference, check, int8


def deploy_cell(spec, model, dataset, shape, test, run_dir: Path, device: str, metadata: dict, calibration=None,
                reference: torch.Tensor | None = None) -> dict:
    """Everything after training for one cell; returns the result fields (``deploy_seconds``:
    the time each step took). ``reference``: the model's eval-mode logits of ``test`` when
    already computed on the CPU."""
    train = spec.train
    repeats = train.latency_repeats
    rows = eval_rows(train.eval_batch_size, device)  # as evaluation: at most 128 rows a pass on a CPU
    clock = _Clock()
    one, many = test.x[:1], test.x[:LATENCY_BATCH]
    model.eval()
    with clock.step("torch_latency"), torch.inference_mode():
        sync = (lambda: synchronize(device)) if str(device).startswith("cuda") else None
        torch_b1 = median_ms(lambda: model(one), repeats=repeats, sync=sync)
        torch_bn = median_ms(lambda: model(many), repeats=max(3, repeats // 5), warmup=B64_WARMUP, sync=sync)
    cpu_model = model.cpu()
    test_x, test_y = test.x.cpu(), test.y.cpu()
    onnx_path = run_dir / ONNX_FILE
    verifier = train.verify_with
    _, check, int8 = export_and_check(
        cpu_model, test_x, test_y, onnx_path, run_dir / INT8_FILE if train.int8 else None, metadata,
        sequence=len(shape) == 2, calibration=calibration, seed=spec.seed, dynamo=train.export_dynamo,
        batch_size=rows, device=device, repeats=repeats, keep_logits=bool(verifier), clock=clock,
        reference=reference if torch.device(device).type == "cpu" else None)  # a GPU run's logits: computed again on the CPU
    session = check.pop("_session")
    ort_fp32 = check.pop("_logits", None)
    x1, xn, x_np, y_np = one.cpu().numpy(), many.cpu().numpy(), test_x.numpy(), test_y.numpy()
    model.to(device)
    int8_logits = int8.pop("_logits", None)
    with clock.step("ort_latency"):
        ort_b1 = ort_latency_ms(session, x1, repeats)
        ort_bn = ort_latency_ms(session, xn, max(3, repeats // 5), warmup=B64_WARMUP)
    second = {}
    if verifier:
        with clock.step(verifier):
            second = second_runtime(verifier, onnx_path, run_dir / INT8_FILE, ort_fp32, int8_logits,
                                    x_np, y_np, (x1, xn), repeats, rows)
    return {
        **check,
        **int8,
        **second,
        "ort_settings": session_settings(),
        "onnx_path": onnx_path.name,
        "onnx_size_mb": round(model_size_mb(onnx_path), 4),
        "torch_latency_ms": round(torch_b1, 4),
        "torch_latency_ms_b64": round(torch_bn, 4),
        "ort_latency_ms": round(ort_b1, 4),
        "ort_latency_ms_b64": round(ort_bn, 4),
        "deploy_seconds": clock.seconds,
    }
