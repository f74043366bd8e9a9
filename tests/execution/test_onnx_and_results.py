import json
import os

import numpy as np
import torch

from tlbench.training.model import build_model
from tlbench.deploy.onnx_export import export_onnx, read_metadata, verify
from tlbench.deploy.ort import make_session
from tlbench.execution.results import finished_run_ids, read_result, write_json_atomic

from conftest import FAST_TRAIN, TOY_PLUGINS, read_results, run_cli


def _cnn(registry):
    torch.manual_seed(0)
    return build_model(registry.get("backbones", "smallcnn"), (1, 28, 28), 10, {"width": 8}).eval()


def test_onnx_matches_torch_at_another_batch_size(registry, tmp_path):
    for dynamo in (True, False):
        model = _cnn(registry)
        path = tmp_path / f"m{dynamo}.onnx"
        export_onnx(model, torch.randn(2, 1, 28, 28), path, {"tlbench.labels": ["a"]}, dynamo=dynamo)
        x = torch.randn(7, 1, 28, 28)
        with torch.no_grad():
            ref = model(x)
        check = verify(path, ref, x, ref.argmax(1), "cpu", 3)
        assert check["onnx_max_abs_diff"] < 1e-4
        assert check["onnx_top1_agreement"] == 1.0
        assert check["ort_provider"] == "CPUExecutionProvider"
        assert read_metadata(path)["tlbench.labels"] == '["a"]'


def test_cpu_only_machine_never_asks_for_cuda(tmp_path, registry):
    path = tmp_path / "m.onnx"
    export_onnx(_cnn(registry), torch.randn(2, 1, 28, 28), path, {}, dynamo=False)
    _, provider = make_session(path, "cpu")
    assert provider == "CPUExecutionProvider"


def test_atomic_write_leaves_no_partial_file(tmp_path):
    path = tmp_path / "r" / "result.json"
    write_json_atomic(path, {"a": float("nan"), "b": [1, 2]})
    assert json.loads(path.read_text()) == {"a": None, "b": [1, 2]}
    assert [p.name for p in path.parent.iterdir()] == ["result.json"]


def test_truncated_or_hand_broken_results_are_not_trusted(tmp_path):
    good = {"run_id": "x", "backbone": "b", "source": "s", "target": "t", "strategy": "st", "loss": "l",
            "seed": 0, "status": "ok", "target_acc": 0.5}
    (tmp_path / "a").mkdir()
    write_json_atomic(tmp_path / "a" / "result.json", good)
    assert read_result(tmp_path / "a" / "result.json") == good
    text = (tmp_path / "a" / "result.json").read_text()
    (tmp_path / "a" / "result.json").write_text(text[: len(text) // 2])
    assert read_result(tmp_path / "a" / "result.json") is None
    write_json_atomic(tmp_path / "a" / "result.json", {**good, "target_acc": "high"})
    assert read_result(tmp_path / "a" / "result.json") is None
    assert finished_run_ids(tmp_path) == set()


def test_end_to_end_run_resume_and_leaderboard(tmp_path):
    args = ["--plugins-dir", TOY_PLUGINS, "run", "--backbone", "smallcnn", "--source", "toy:a", "--target", "toy:b",
            "--strategy", "scratch,finetune", "--loss", "none,dann", "--shots", "5", "--seeds", "0",
            "--results-dir", tmp_path, "--set", "smallcnn.width=8", *FAST_TRAIN]
    first = run_cli(*args)
    assert first.returncode == 0, first.stdout + first.stderr
    results = read_results(tmp_path)
    assert len(results) == 4 and all(r["status"] == "ok" for r in results)
    for r in results:
        assert r["onnx_top1_agreement"] == 1.0 and r["onnx_max_abs_diff"] < 1e-3
        assert (tmp_path / f"{r['backbone']}__toy-a__toy-b__{r['strategy']}__{r['loss']}__shots5__seed0__{r['run_id']}" / "model.onnx").exists()
        for key in ("train_seconds", "train_samples_per_s", "torch_latency_ms", "ort_latency_ms", "source_acc", "versions"):
            assert r[key] is not None
    # the source model was trained once and then reused from the cache
    assert sum(not r["source_cached"] for r in results if r["strategy"] != "scratch") <= 1
    assert len(list((tmp_path / ".cache" / "sources").glob("*.pt"))) == 1
    mtimes = {p: p.stat().st_mtime_ns for p in tmp_path.glob("*/result.json")}
    second = run_cli(*args)
    assert second.returncode == 0
    assert "4 already finished, 0 to run" in second.stdout
    assert mtimes == {p: p.stat().st_mtime_ns for p in tmp_path.glob("*/result.json")}
    for fmt in ("csv", "md", "json"):
        board = run_cli("leaderboard", tmp_path, "--format", fmt)
        assert board.returncode == 0 and "finetune" in board.stdout
    data = json.loads(run_cli("leaderboard", tmp_path, "--format", "json").stdout)
    scratch = [r for r in data["leaderboard"] if r["strategy"] == "scratch"]
    assert all(r["gain_vs_scratch"] == 0.0 for r in scratch)


def test_failing_cell_is_recorded_and_the_grid_goes_on(tmp_path):
    plugin = tmp_path / "plugs"
    plugin.mkdir()
    (plugin / "exploding.py").write_text(
        "from tlbench import hookimpl\n"
        "from tlbench.plugin.contracts import AdaptationLoss\n"
        "class Boom(AdaptationLoss):\n"
        "    def forward(self, batch):\n"
        "        raise RuntimeError('kaboom')\n"
        "@hookimpl\n"
        "def register_adaptation_losses(register):\n"
        "    register('boom', Boom)\n"
    )
    out = tmp_path / "out"
    proc = run_cli("--plugins-dir", TOY_PLUGINS, "--plugins-dir", plugin, "run", "--backbone", "smallcnn",
                   "--source", "toy:a", "--target", "toy:b", "--strategy", "finetune", "--loss", "boom,none",
                   "--shots", "5", "--results-dir", out, "--set", "smallcnn.width=8", *FAST_TRAIN)
    assert proc.returncode == 1
    by_loss = {r["loss"]: r for r in read_results(out)}
    assert by_loss["boom"]["status"] == "failed" and "kaboom" in by_loss["boom"]["error"]
    assert by_loss["none"]["status"] == "ok"
    assert "failed or interrupted runs" in proc.stdout
