"""Export a transfer model to ONNX, check its structure, then its numbers, in onnxruntime.

Every exported graph, whichever exporter wrote it, has the same interface: one input ``input``
whose axes are named ``batch`` (and ``time`` for ``(batch, time, features)`` sequences), one
output ``logits`` of shape ``(batch, classes)``. The exporters' per-node debug records (node
``metadata_props`` and doc strings, value_info shape annotations) are dropped: they are not
needed to run the graph, and stale shape annotations broke onnxruntime's quantizer (see
``tlbench.deploy.quantize``).
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from tlbench.deploy.graph import strip_debug_info
from tlbench.deploy.ort import make_session, ort_logits
from tlbench.utils.atomic import atomic_write_bytes

INPUT, OUTPUT = "input", "logits"
BATCH_AXIS, TIME_AXIS = "batch", "time"
OPSET = 17


def axis_names(sequence: bool) -> dict[int, str]:
    """The named dynamic axes of the model input."""
    return {0: BATCH_AXIS, 1: TIME_AXIS} if sequence else {0: BATCH_AXIS}


def _export_proto(model, example, sequence: bool, dynamo: bool) -> onnx.ModelProto:
    names = axis_names(sequence)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            # Dim.AUTO, not a named Dim: with named Dims torch 2.14 silently fixed the time axis of
            # an LSTM/GRU to the example's length whenever one of its kind had already been
            # exported in the same process. The exporter's own symbols are renamed afterwards
            # (_rename_symbols) and _check_free_axes refuses any axis that still came out fixed.
            shapes = ({axis: torch.export.Dim.AUTO for axis in names},)
            program = torch.onnx.export(
                model, (example,), None, dynamo=True, dynamic_shapes=shapes, input_names=[INPUT],
                output_names=[OUTPUT], optimize=True, verbose=False,
            )
            return program.model_proto
        buffer = io.BytesIO()
        torch.onnx.export(
            model, (example,), buffer, dynamo=False, input_names=[INPUT], output_names=[OUTPUT],
            dynamic_axes={INPUT: names, OUTPUT: {0: BATCH_AXIS}}, opset_version=OPSET,
        )
        return onnx.load_from_string(buffer.getvalue())


def _rename_symbols(proto: onnx.ModelProto, sequence: bool) -> None:
    """Give the input's symbolic axes (and the same symbols elsewhere) the names above."""
    renames = {}
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    for axis, name in axis_names(sequence).items():
        if axis < len(dims) and dims[axis].dim_param and dims[axis].dim_param != name:
            renames[dims[axis].dim_param] = name
    if not renames:
        return
    for value in list(proto.graph.input) + list(proto.graph.output) + list(proto.graph.value_info):
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in renames:
                dim.dim_param = renames[dim.dim_param]


def _check_free_axes(proto: onnx.ModelProto, sequence: bool) -> None:
    """Refuse a graph whose batch (or time) axis the exporter fixed to the example's size."""
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    fixed = [name for axis, name in axis_names(sequence).items() if axis < len(dims) and dims[axis].dim_param != name]
    if fixed:
        raise RuntimeError(f"the ONNX exporter fixed the {', '.join(fixed)} axis of the input to the example's size; "
                           "export with the TorchScript exporter instead (--set train.export_dynamo=false)")


def export_onnx(model: torch.nn.Module, example: torch.Tensor, path, metadata: dict, dynamo: bool = True) -> None:
    """Export ``model`` (eval mode, on CPU) with named dynamic axes (``batch``; ``time`` for 3-D
    sequence inputs), without debug records, run ``onnx.checker``, store ``metadata`` as
    ``metadata_props``."""
    model = model.eval().cpu()
    example = example.cpu()
    if len(example) < 2:
        example = torch.cat([example, example])
    sequence = example.dim() == 3
    proto = _export_proto(model, example, sequence, dynamo)
    _rename_symbols(proto, sequence)
    _check_free_axes(proto, sequence)
    strip_debug_info(proto)
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key = key
        entry.value = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    onnx.checker.check_model(proto)
    atomic_write_bytes(path, proto.SerializeToString())


def read_metadata(path) -> dict:
    """The ``metadata_props`` of an ONNX file as a dict of strings."""
    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def compare_logits(candidate: np.ndarray, reference: np.ndarray, labels: np.ndarray | None = None) -> dict:
    """Max |Δlogit|, top-1 agreement (and accuracy when ``labels`` are given) of ``candidate``."""
    if not len(reference):
        return {"max_abs_diff": 0.0, "top1_agreement": 1.0, "acc": 0.0}
    out = {
        "max_abs_diff": float(np.max(np.abs(candidate - reference))),
        "top1_agreement": float(np.mean(candidate.argmax(1) == reference.argmax(1))),
    }
    if labels is not None:
        out["acc"] = float(np.mean(candidate.argmax(1) == labels))
    return out


def verify(path, torch_logits: torch.Tensor, x: torch.Tensor, labels: torch.Tensor, device: str, batch_size: int,
           keep_logits: bool = False) -> dict:
    """Compare onnxruntime with torch on the same inputs: max |Δlogit|, top-1 agreement, accuracy.
    The session comes back as ``_session`` (for latency), the logits as ``_logits`` if asked."""
    session, provider = make_session(path, device)
    ort_out = ort_logits(session, x.cpu().numpy().astype(np.float32), batch_size)
    check = compare_logits(ort_out, torch_logits.detach().cpu().numpy(), labels.cpu().numpy())
    out = {
        "onnx_max_abs_diff": check["max_abs_diff"],
        "onnx_top1_agreement": check["top1_agreement"],
        "onnx_target_acc": check["acc"],
        "ort_provider": provider,
        "_session": session,
    }
    if keep_logits:
        out["_logits"] = ort_out
    return out


def model_size_mb(path) -> float:
    return Path(path).stat().st_size / 1e6
