import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FAST_TRAIN, read_results, run_cli

EXAMPLE = Path(__file__).parents[2] / "examples" / "tlbench-example-plugin"


@pytest.mark.slow
def test_pip_installed_plugin_is_discovered_and_runs(tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target", target, EXAMPLE],
        check=True, capture_output=True,
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}
    listed = json.loads(run_cli("plugins", "--json", env=env, isolate=True).stdout)
    tinymlp = next(e for e in listed["backbones"] if e["name"] == "tinymlp")
    assert tinymlp["distribution"] == "tlbench-example-plugin" and tinymlp["plugin"] == "example"
    assert any(e["name"] == "meanmatch" for e in listed["adaptation_losses"])
    out = tmp_path / "out"
    proc = run_cli("run", "--backbone", "tinymlp", "--source", "digits:mnist", "--target", "digits:uci",
                   "--strategy", "finetune", "--loss", "meanmatch", "--shots", "2", "--results-dir", out, *FAST_TRAIN, env=env, isolate=True)
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
                   "--set", "train.model_selection=top2-margin", "--results-dir", own, *FAST_TRAIN, env=env, isolate=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (result,) = read_results(own)
    assert result["status"] == "ok" and result["strategy"] == "top-stage" and result["target_classes"] == ["vertical", "horizontal"]
    # its estimator scored the source model before training; its validator picked the checkpoint
    assert result["transferability"]["scores"]["spread-ratio"] > 0 and result["model_selection"] == "top2-margin"
    assert 0.0 <= result["validator_scores"]["top2-margin"] <= 1.0
    board = run_cli("leaderboard", own, "--format", "csv", "--columns", "acc,provenance", env=env, isolate=True)
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


def _readme_blocks(language: str) -> list[str]:
    """The ``language`` code blocks of the README's "Writing a plugin" section, in order."""
    text = (Path(__file__).parents[2] / "README.md").read_text()
    section = text.split("## Writing a plugin", 1)[1].split("\n## ", 1)[0]
    return [block.split("```", 1)[0] for block in section.split(f"```{language}\n")[1:]]


@pytest.mark.slow
def test_plugin_written_only_from_the_readme_installs_and_runs(tmp_path):
    """The README's two files, copied as a newcomer would, make a package that installs, lists
    its plugins, refuses an option outside its declared range and runs a grid."""
    package = tmp_path / "my-tlbench-plugin"
    package.mkdir()
    (toml,) = [b for b in _readme_blocks("toml") if "[project.entry-points.tlbench]" in b]
    (module,) = [b for b in _readme_blocks("python") if "@hookimpl" in b]
    (package / "pyproject.toml").write_text(toml)
    (package / "my_tlbench_plugin.py").write_text(module)
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", target, package], check=True, capture_output=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}
    cell = ["run", "--backbone", "flatmlp", "--source", "digits:mnist", "--target", "digits:uci", "--strategy", "finetune",
            "--loss", "meangap", "--shots", "2", "--results-dir", tmp_path / "out", *FAST_TRAIN, "--set", "train.int8=false"]
    refused = run_cli(*cell, "--set", "meangap.weight=-1", env=env, isolate=True)
    assert refused.returncode == 2 and "meangap" in refused.stderr and "weight" in refused.stderr, refused.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*/result.json"))
    proc = run_cli(*cell, "--set", "meangap.weight=0.5", env=env, isolate=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (result,) = read_results(tmp_path / "out")
    assert result["status"] == "ok" and result["backbone"] == "flatmlp" and result["loss"] == "meangap"
    assert result["provenance"]["backbones"]["distribution"] == "my-tlbench-plugin"
    assert result["onnx_top1_agreement"] == 1.0
