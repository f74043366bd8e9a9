"""Portable deployment: named axes and clean graphs from both exporters, INT8 for every backbone
kind, the INT8-failure flag in the leaderboard, OpenVINO as a second runtime."""

import json

import numpy as np
import onnx
import pytest
import torch

from tlbench.deploy.graph import input_axes, output_axes
from tlbench.deploy.onnx_export import export_onnx
from tlbench.deploy.ort import make_session
from tlbench.deploy.quantize import DYNAMIC, quantize_model
from tlbench.training.model import build_model

from conftest import TOY_PLUGINS, read_results, run_cli

EXPORTERS = [pytest.param(False, id="torchscript"), pytest.param(True, id="dynamo")]


def _logits(session, x):
    return session.run(None, {session.get_inputs()[0].name: x})[0]


@pytest.mark.parametrize("dynamo", EXPORTERS)
@pytest.mark.parametrize("backbone, shape, options, axes", [
    ("smallcnn", (1, 8, 8), {"width": 8}, ["batch", 1, 8, 8]),
    ("gru", (12, 4), {"hidden": 8, "layers": 1}, ["batch", "time", 4]),
])
def test_exported_input_output_and_axis_names(registry, tmp_path, dynamo, backbone, shape, options, axes):
    model = build_model(registry.get("backbones", backbone), shape, 3, options).eval()
    path = tmp_path / "m.onnx"
    export_onnx(model, torch.randn(2, *shape), path, {"tlbench.labels": ["a", "b", "c"]}, dynamo=dynamo)
    assert input_axes(path) == ("input", axes)
    assert output_axes(path) == ("logits", ["batch", 3])
    proto = onnx.load(str(path))
    # no per-node debug records or stale shape annotations left by the exporter
    assert not any(len(n.metadata_props) or n.doc_string for n in proto.graph.node)
    assert len(proto.graph.value_info) == 0
    assert {p.key for p in proto.metadata_props} == {"tlbench.labels"}
    # the symbolic batch (and time) axes really are free in onnxruntime
    session = make_session(path)[0]
    for batch, length in ((1, shape[0]), (7, shape[0] + 9 if len(shape) == 2 else shape[0])):
        x = torch.randn(batch, length, *shape[1:])
        with torch.no_grad():
            assert np.allclose(_logits(session, x.numpy()), model(x).numpy(), atol=1e-4)


@pytest.mark.parametrize("dynamo", EXPORTERS)
@pytest.mark.slow
@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2])
def test_recurrent_exports_keep_batch_and_time_free_export_after_export(registry, tmp_path, dynamo, cell, layers):
    # With named torch.export Dims, an LSTM/GRU exported after another of its kind in the same
    # process had its time axis fixed to the example's length: a grid exports several, so export two.
    torch.manual_seed(0)
    entry = registry.get("backbones", cell)
    for i, depth in enumerate((3 - layers, layers)):
        model = build_model(entry, (20, 6), 10, {**entry.defaults, "layers": depth}).eval()
        path = tmp_path / f"r{i}.onnx"
        export_onnx(model, torch.randn(4, 20, 6), path, {}, dynamo=dynamo)
        assert input_axes(path) == ("input", ["batch", "time", 6])
        session = make_session(path)[0]
        x = torch.randn(3, 33, 6)
        with torch.no_grad():
            assert np.allclose(_logits(session, x.numpy()), model(x).numpy(), atol=1e-4)


@pytest.mark.parametrize("dynamo", EXPORTERS)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_recurrent_int8_models_exist_and_run_at_two_batches_and_lengths(registry, tmp_path, dynamo, cell):
    torch.manual_seed(0)
    model = build_model(registry.get("backbones", cell), (20, 6), 6, {"hidden": 32, "layers": 2}).eval()
    fp32, int8 = tmp_path / "r.onnx", tmp_path / "r.int8.onnx"
    export_onnx(model, torch.randn(64, 20, 6), fp32, {"tlbench.labels": list("abcdef")}, dynamo=dynamo)
    assert quantize_model(fp32, int8, None) == DYNAMIC
    proto = onnx.load(str(int8))
    assert any(init.data_type == onnx.TensorProto.INT8 for init in proto.graph.initializer)  # really quantized
    assert json.loads({p.key: p.value for p in proto.metadata_props}["tlbench.labels"]) == list("abcdef")
    session = make_session(int8)[0]
    for batch in (1, 9):
        for length in (5, 40):
            x = torch.randn(batch, length, 6)
            with torch.no_grad():
                ref = model(x).numpy()
            out = _logits(session, x.numpy())
            assert out.shape == (batch, 6) and np.max(np.abs(out - ref)) < 0.1


def _toy_spec(registry, **train):
    from tlbench.grid import expand

    config = {"backbone": ["smallcnn"], "source": ["toy:a"], "target": ["toy:b"], "strategy": ["finetune"], "loss": ["none"],
              "shots": [5], "seeds": [0], "set": {"smallcnn": {"width": 8}},
              "train": {"steps": 2, "source_epochs": 1, "latency_repeats": 1, "export_dynamo": False, **train}}
    (spec,) = expand(config, registry)
    return spec


def test_int8_failure_is_flagged_in_the_leaderboard(registry, tmp_path, monkeypatch):
    import tlbench.deploy.quantize as quantize
    from tlbench.execution.runner import Runner
    from tlbench.report import formats

    def broken(*args, **kwargs):
        raise RuntimeError("forced quantization failure")

    monkeypatch.setattr(quantize, "quantize_model", broken)
    result = Runner(registry, tmp_path, "cpu", log=lambda message: None).run(_toy_spec(registry))
    assert result["status"] == "ok" and "forced quantization failure" in result["int8_error"]
    markdown = formats.export([result], "md")
    assert "INT8 FAILED x1" in markdown
    (row,) = json.loads(formats.export([result], "json"))["leaderboard"]
    assert row["int8_failed"] == 1
    assert "int8_failed" in formats.export([result], "csv").splitlines()[0]
    # a cell whose INT8 step worked carries no flag
    monkeypatch.undo()
    good = Runner(registry, tmp_path / "ok", "cpu", log=lambda message: None).run(_toy_spec(registry))
    assert good["int8_error"] is None and "FAILED" not in formats.export([good], "md")


def test_unknown_or_missing_verifier_is_a_one_line_error(tmp_path):
    done = run_cli("--plugins-dir", TOY_PLUGINS, "run", "--backbone", "smallcnn", "--source", "toy:a", "--target", "toy:b",
                   "--results-dir", tmp_path, "--set", "train.verify_with=tract")
    assert done.returncode == 2 and "verify_with = 'tract' is not a known runtime" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not list(tmp_path.glob("*/result.json"))


def test_openvino_agrees_with_onnxruntime_on_a_real_run(tmp_path):
    pytest.importorskip("openvino")
    done = run_cli("--plugins-dir", TOY_PLUGINS, "run", "--backbone", "smallcnn", "--source", "toy:a", "--target", "toy:b",
                   "--shots", "5", "--results-dir", tmp_path, "--set", "smallcnn.width=8", "--set", "train.steps=20",
                   "--set", "train.source_epochs=2", "--set", "train.latency_repeats=2", "--set", "train.export_dynamo=false",
                   "--verify-with", "openvino")
    assert done.returncode == 0, done.stdout + done.stderr
    (result,) = read_results(tmp_path)
    assert result["status"] == "ok" and result["openvino_error"] is None, result.get("openvino_error")
    assert result["openvino_precision_hint"] == "f32"
    assert result["openvino_top1_agreement"] == 1.0 and result["openvino_max_abs_diff"] < 1e-4
    assert abs(result["openvino_target_acc"] - result["onnx_target_acc"]) < 1e-9
    # the INT8 model too: the runtimes' integer kernels differ, the classes hardly
    assert result["openvino_int8_top1_agreement"] >= 0.95, result["openvino_int8_top1_agreement"]
    for key in ("openvino_latency_ms", "openvino_latency_ms_b64", "openvino_int8_latency_ms"):
        assert result[key] > 0
    assert set(result["deploy_seconds"]) >= {"export", "verify", "int8", "openvino", "ort_latency", "torch_latency"}
