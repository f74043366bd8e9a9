"""`tlbench export RUN_DIR`: rebuild a stored run's model from its ``model.pt`` and export it again.

The model is rebuilt from the run's own ``result.json`` (backbone, options, input shape) and its
trained weights (loaded with ``weights_only=True``: a state dict, never pickled code), exported
with the same metadata as during the run, checked against torch on the target test split, and
quantized to INT8 unless told not to.
"""

from __future__ import annotations

from pathlib import Path

import torch

from tlbench.plugin.errors import UserError, first_line
from tlbench.grid import RunSpec
from tlbench.execution.results import INT8_FILE, MODEL_FILE, ONNX_FILE, RESULT_FILE, read_result
from tlbench.execution.cell_data import calibration_inputs


def spec_from_record(record: dict, registry=None, where: str = RESULT_FILE) -> RunSpec:
    """The RunSpec a result record was produced from. With ``registry``, its stored plugin options
    are checked as the grid checks them: a hand-edited record is a one-line UserError."""
    fix = "rerun the run (or restore the file) to export it"
    try:
        spec = RunSpec.from_record(record)
    except Exception as exc:  # noqa: BLE001 - wrong types in a hand-edited file
        raise UserError(f"{where} does not describe a run ({first_line(exc)}); {fix}") from None
    if registry is None:
        return spec
    from tlbench.grid.options import resolve_entry_options

    stored = (("backbones", spec.backbone, spec.backbone_options), ("strategies", spec.strategy, spec.strategy_options),
              ("adaptation_losses", spec.loss, spec.loss_options))
    try:
        for kind, name, options in stored:
            resolve_entry_options(registry.get(kind, name), options)
        if not isinstance(spec.dataset_options, dict) or not all(isinstance(v, dict) for v in spec.dataset_options.values()):
            raise UserError("dataset_options must map dataset names to tables of options")
    except UserError as exc:
        raise UserError(f"{where} holds settings this tlbench cannot rebuild: {exc}; {fix}") from None
    return spec


def export_run(run_dir, registry, output=None, int8: bool = True, dynamo: bool | None = None) -> dict:
    """Re-export the run stored in ``run_dir``; returns what was written and how it checked."""
    from tlbench.execution.deployment import export_and_check
    from tlbench.execution.runner import Runner
    from tlbench.training.model import build_model

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
    where = str(run_dir / RESULT_FILE)
    spec = spec_from_record(record, registry, where)
    runner = Runner(registry, run_dir.parent, "cpu", log=lambda msg: None)
    try:
        backbone, dataset, shape, data = runner.inputs(spec)
        if record.get("input_shape") and list(shape) != list(record["input_shape"]):
            raise UserError(f"dataset now gives input shape {list(shape)}, the run used {record['input_shape']}")
        model = build_model(backbone, shape, len(dataset.classes), spec.backbone_options)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - a plugin may raise anything for settings it no longer takes
        raise UserError(f"cannot rebuild the model {where} describes ({spec.backbone} on {spec.target}): {first_line(exc)}") from None
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as exc:  # a corrupt or mismatched file
        raise UserError(f"cannot load {str(weights)!r} into {spec.backbone}: {first_line(exc, typed=False)}") from None
    model.eval()
    test = data["target_test"]
    x = test.x.cpu()
    batch = spec.train.eval_batch_size
    path = Path(output) if output else run_dir / ONNX_FILE
    use_dynamo = spec.train.export_dynamo if dynamo is None else dynamo
    int8_path = (path.with_name(path.stem + ".int8.onnx") if output else run_dir / INT8_FILE) if int8 else None
    # the run's own sequence; its target train inputs give the input statistics and INT8 calibration, as in the run
    reference, check, report = export_and_check(
        model, x, test.y, path, int8_path, runner.export_metadata(spec, dataset, shape), sequence=len(shape) == 2,
        calibration=calibration_inputs(spec, data), seed=spec.seed, dynamo=use_dynamo, batch_size=batch, device="cpu", repeats=3)
    check.pop("_session")
    return {"onnx_path": str(path), "torch_target_acc": float((reference.argmax(1) == test.y).float().mean()), **check, **report}
