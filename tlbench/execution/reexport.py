"""`tlbench export RUN_DIR`: rebuild a stored run's model from its ``model.pt`` and export it again.

The model is rebuilt from the run's own ``result.json`` (backbone, options, input shape) and its
trained weights (loaded with ``weights_only=True``: a state dict, never pickled code), exported
with the same metadata as during the run, checked against torch on the target test split, and
quantized to INT8 unless told not to.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from tlbench.plugin.errors import UserError
from tlbench.grid import RunSpec
from tlbench.execution.results import INT8_FILE, MODEL_FILE, ONNX_FILE, RESULT_FILE, read_result


def spec_from_record(record: dict) -> RunSpec:
    """The RunSpec a result record was produced from."""
    known = {f.name for f in dataclasses.fields(RunSpec)}
    return RunSpec(**{k: v for k, v in record.items() if k in known})


def export_run(run_dir, registry, output=None, int8: bool = True, dynamo: bool | None = None) -> dict:
    """Re-export the run stored in ``run_dir``; returns what was written and how it checked."""
    from tlbench.training.model import build_model
    from tlbench.deploy.onnx_export import export_onnx, verify
    from tlbench.deploy.input_stats import STATS_KEY, input_statistics
    from tlbench.deploy.quantize import int8_report
    from tlbench.execution.runner import Runner, onnx_metadata
    from tlbench.training.loop import predict_logits

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run directory {str(run_dir)!r} does not exist; pass DIR/<run> from a results directory")
    record = read_result(run_dir / RESULT_FILE)
    if record is None:
        raise UserError(f"{str(run_dir)!r} has no valid {RESULT_FILE}; pass one run's directory")
    if record["status"] != "ok":
        raise UserError(f"run {record['run_id']} did not finish ok ({record['status']}); nothing to export")
    weights = run_dir / MODEL_FILE
    if not weights.is_file():
        raise UserError(f"{str(run_dir)!r} has no {MODEL_FILE} (runs before tlbench saved weights); rerun it to export")
    spec = spec_from_record(record)
    runner = Runner(registry, run_dir.parent, "cpu", log=lambda msg: None)
    backbone, dataset, shape, data = runner._inputs(spec)
    if record.get("input_shape") and list(shape) != list(record["input_shape"]):
        raise UserError(f"dataset now gives input shape {list(shape)}, the run used {record['input_shape']}")
    model = build_model(backbone, shape, len(dataset.classes), spec.backbone_options)
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as exc:  # a corrupt or mismatched file
        raise UserError(f"cannot load {str(weights)!r} into {spec.backbone}: {str(exc).splitlines()[0][:200]}") from None
    model.eval()
    test = data["target_test"]
    x = test.x.cpu()
    batch = spec.train.get("eval_batch_size", 512)
    reference = predict_logits(model, x, batch)
    path = Path(output) if output else run_dir / ONNX_FILE
    use_dynamo = spec.train.get("export_dynamo", True) if dynamo is None else dynamo
    metadata = onnx_metadata(spec, dataset, shape, runner._versions)
    train_x = data["target_train"].x  # the statistics `tlbench predict` compares inputs with, as in the run
    train_x = train_x.cpu().numpy() if hasattr(train_x, "cpu") else np.asarray(train_x)
    if len(train_x):
        metadata[STATS_KEY] = input_statistics(train_x, sequence=len(shape) == 2, seed=spec.seed)
    export_onnx(model, x[:2], path, metadata, dynamo=use_dynamo)
    check = verify(path, reference, x, test.y, "cpu", batch)
    check.pop("_session")
    out = {"onnx_path": str(path), "torch_target_acc": float((reference.argmax(1) == test.y).float().mean()), **check}
    if int8:
        x_np = x.numpy()
        calibration = data["target_train"].x
        calibration = calibration.cpu().numpy() if hasattr(calibration, "cpu") else np.asarray(calibration)
        report = int8_report(
            path, path.with_name(path.stem + ".int8.onnx") if output else run_dir / INT8_FILE,
            calibration=calibration, test_x=x_np, test_y=test.y.numpy(),
            fp32_acc=check["onnx_target_acc"], latency_inputs=(x_np[:1], x_np[:64]), repeats=3, batch_size=batch,
            seed=spec.seed,
        )
        out.update({k: v for k, v in report.items() if k.startswith("int8_")})
    return out
