import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import FAST_TRAIN, read_results, run_cli

EXAMPLE = Path(__file__).parents[2] / "examples" / "tlbench-example-plugin"


def test_pip_installed_plugin_is_discovered_and_runs(tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target", target, EXAMPLE],
        check=True, capture_output=True,
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}
    listed = json.loads(run_cli("plugins", "--json", env=env).stdout)
    tinymlp = next(e for e in listed["backbones"] if e["name"] == "tinymlp")
    assert tinymlp["distribution"] == "tlbench-example-plugin" and tinymlp["plugin"] == "example"
    assert any(e["name"] == "meanmatch" for e in listed["adaptation_losses"])
    out = tmp_path / "out"
    proc = run_cli("run", "--backbone", "tinymlp", "--source", "digits:mnist", "--target", "digits:uci",
                   "--strategy", "finetune", "--loss", "meanmatch", "--shots", "2", "--results-dir", out, *FAST_TRAIN, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (result,) = read_results(out)
    assert result["status"] == "ok" and result["loss"] == "meanmatch"
    assert result["provenance"]["backbones"]["distribution"] == "tlbench-example-plugin"
    assert result["onnx_top1_agreement"] == 1.0
    # every other plugin kind the package registers: its own dataset, strategy and executor
    for kind, name in (("datasets", "stripes"), ("strategies", "top-stage"), ("executors", "in-order"),
                       ("estimators", "spread-ratio"), ("validators", "top2-margin")):
        assert any(e["name"] == name and e["distribution"] == "tlbench-example-plugin" for e in listed[kind]), name
    own = tmp_path / "own"
    proc = run_cli("run", "--backbone", "tinymlp", "--source", "stripes:plain", "--target", "stripes:noisy",
                   "--strategy", "top-stage", "--loss", "meanmatch", "--shots", "3", "--executor", "in-order",
                   "--set", "train.model_selection=top2-margin", "--results-dir", own, *FAST_TRAIN, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (result,) = read_results(own)
    assert result["status"] == "ok" and result["strategy"] == "top-stage" and result["target_classes"] == ["vertical", "horizontal"]
    # its estimator scored the source model before training; its validator picked the checkpoint
    assert result["transferability"]["scores"]["spread-ratio"] > 0 and result["model_selection"] == "top2-margin"
    assert 0.0 <= result["validator_scores"]["top2-margin"] <= 1.0
    board = run_cli("leaderboard", own, "--format", "csv", "--columns", "acc,provenance", env=env)
    assert board.returncode == 0 and "top-stage" in board.stdout and "tlbench-example-plugin" in board.stdout


def test_plugin_written_for_the_flat_layout_still_runs(tmp_path):
    """The first release documented flat module paths (tlbench.contracts, tlbench.stages, ...);
    a plugin using them loads and runs a grid through its own strategy, loss and executor."""
    old = Path(__file__).parent / "old_layout_plugin"
    out = tmp_path / "out"
    proc = run_cli("--plugins-dir", old, "run", "--backbone", "smallcnn", "--source", "digits:mnist", "--target", "digits:uci",
                   "--strategy", "old-top-stage", "--loss", "old-meanmatch", "--shots", "2", "--executor", "old-local",
                   "--results-dir", out, *FAST_TRAIN)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (result,) = read_results(out)
    assert result["status"] == "ok" and result["strategy"] == "old-top-stage" and result["loss"] == "old-meanmatch"
