"""Leaderboard statistics, exports and plots on hand-made result sets (no training)."""

import json

import pytest

from conftest import run_cli
from tlbench import leaderboard

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def result(strategy, acc, seed=0, shots=10, source="d:a", target="d:b", backbone="net", loss="none", **extra):
    """One hand-made ``ok`` result record."""
    record = dict(
        run_id=f"{backbone}-{source}-{target}-{strategy}-{loss}-{shots}-{seed}".replace(":", ""),
        backbone=backbone, source=source, target=target, strategy=strategy, loss=loss, shots=shots, seed=seed,
        status="ok", target_acc=acc, source_acc=0.9, train_seconds=2.0, train_samples_per_s=500.0,
        torch_latency_ms=1.0, ort_latency_ms=0.5, onnx_max_abs_diff=1e-6, onnx_top1_agreement=1.0, onnx_size_mb=0.2,
    )
    record.update(extra)
    return record


def write_results(directory, results):
    for r in results:
        run = directory / r["run_id"]
        run.mkdir(parents=True, exist_ok=True)
        (run / "result.json").write_text(json.dumps(r))
    return directory


def shots_grid():
    """Three strategies x shots 1, 10, all x 3 seeds on one pair."""
    base = {"scratch": 0.30, "finetune": 0.60, "linear-probe": 0.50}
    bump = {1: 0.0, 10: 0.1, "all": 0.3}
    noise = (-0.01, 0.0, 0.01)
    return [
        result(s, b + bump[shots] + noise[seed], seed=seed, shots=shots)
        for s, b in base.items() for shots in bump for seed in range(3)
    ]


def test_plot_file_png_draws_accuracy_vs_shots(tmp_path):
    write_results(tmp_path / "runs", shots_grid())
    out = tmp_path / "shots.png"
    proc = run_cli("leaderboard", tmp_path / "runs", "--plot", out, "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes().startswith(PNG_MAGIC) and out.stat().st_size > 10_000
