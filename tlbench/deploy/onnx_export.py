"""Export a transfer model to ONNX, check its structure, then its numbers, in onnxruntime."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from tlbench.deploy.ort import make_session, ort_logits
from tlbench.utils.atomic import atomic_write_bytes

INPUT, OUTPUT = "input", "logits"


def export_onnx(model: torch.nn.Module, example: torch.Tensor, path, metadata: dict, dynamo: bool = True) -> None:
    """Export ``model`` (eval mode, on CPU) with a dynamic batch axis (and dynamic sequence axis
    for 3-D sequence inputs), run ``onnx.checker``, store ``metadata`` as ``metadata_props``."""
    model = model.eval().cpu()
    example = example.cpu()
    if len(example) < 2:
        example = torch.cat([example, example])
    sequence = example.dim() == 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            auto = torch.export.Dim.AUTO
            shapes = ({0: auto, 1: auto},) if sequence else ({0: auto},)
            program = torch.onnx.export(
                model, (example,), None, dynamo=True, dynamic_shapes=shapes, input_names=[INPUT],
                output_names=[OUTPUT], optimize=True, verbose=False,
            )
            proto = program.model_proto
        else:
            axes = {INPUT: {0: "batch", 1: "time"} if sequence else {0: "batch"}, OUTPUT: {0: "batch"}}
            import io

            buffer = io.BytesIO()
            torch.onnx.export(
                model, (example,), buffer, dynamo=False, input_names=[INPUT], output_names=[OUTPUT],
                dynamic_axes=axes, opset_version=17,
            )
            proto = onnx.load_from_string(buffer.getvalue())
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


def verify(path, torch_logits: torch.Tensor, x: torch.Tensor, labels: torch.Tensor, device: str, batch_size: int) -> dict:
    """Compare onnxruntime with torch on the same inputs: max |Δlogit|, top-1 agreement, accuracy."""
    session, provider = make_session(path, device)
    ort_out = ort_logits(session, x.cpu().numpy().astype(np.float32), batch_size)
    reference = torch_logits.detach().cpu().numpy()
    return {
        "onnx_max_abs_diff": float(np.max(np.abs(ort_out - reference))) if len(reference) else 0.0,
        "onnx_top1_agreement": float(np.mean(ort_out.argmax(1) == reference.argmax(1))) if len(reference) else 1.0,
        "onnx_target_acc": float(np.mean(ort_out.argmax(1) == labels.cpu().numpy())) if len(reference) else 0.0,
        "ort_provider": provider,
        "_session": session,
    }


def model_size_mb(path) -> float:
    return Path(path).stat().st_size / 1e6
