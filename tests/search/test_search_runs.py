"""Search trials run as grid cells: validators never read target test labels (poisoned labels
change nothing but the oracle), a killed search resumes to the same trial set, TPE included."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tlbench.execution.runner import Runner
from tlbench.grid import expand
from tlbench.plugin.contracts import DomainData, Split
from tlbench.report.selection import annotate, selection_rows
from tlbench.search.trials import expand_search

from conftest import TOY_PLUGINS, read_results, run_cli

TINY = {"steps": 4, "source_epochs": 1.0, "latency_repeats": 2, "export_dynamo": False, "int8": False, "selection_every": 2}
TINY_FLAGS = ["--set", "train.steps=4", "--set", "train.source_epochs=1", "--set", "train.latency_repeats=2",
              "--set", "train.export_dynamo=false", "--set", "train.int8=false"]
GRID = ["--plugins-dir", TOY_PLUGINS, "run", "--backbone", "smallcnn", "--source", "toy:a", "--target", "toy:b",
        "--strategy", "finetune", "--loss", "dann", "--shots", "0", "--seeds", "0"]


def _trial_specs(registry, train=None, trials=2):
    config = {"backbone": ["smallcnn"], "source": ["toy:a"], "target": ["toy:b"], "strategy": ["finetune"],
              "loss": ["dann"], "shots": [0], "seeds": [0], "train": {**TINY, **(train or {})}, "search": {"trials": trials}}
    return expand_search(config, registry, expand(config, registry))


def _poison_target_test(monkeypatch):
    """Every target test label shifted to another class; inputs and all other data untouched."""
    from tlbench.execution.cell_data import DomainCache

    original = DomainCache.domain

    def domain(self, value, options=None):
        view, data = original(self, value, options)
        if value.endswith(":b"):
            data = DomainData(data.train, Split(data.test.x, (data.test.y + 1) % len(view.classes)))
        return view, data

    monkeypatch.setattr(DomainCache, "domain", domain)


def _run_all(registry, specs, results_dir):
    runner = Runner(registry, results_dir, log=lambda *_: None)
    return [runner.run(spec) for spec in specs]


def test_poisoned_target_test_labels_change_no_selection_but_the_oracles(registry, tmp_path, monkeypatch):
    specs = _trial_specs(registry, {"model_selection": "entropy"})
    clean = _run_all(registry, specs, tmp_path / "clean")
    _poison_target_test(monkeypatch)
    poisoned = _run_all(registry, specs, tmp_path / "poisoned")
    assert all(r["status"] == "ok" for r in clean + poisoned), [r["error"] for r in clean + poisoned]
    for a, b in zip(clean, poisoned):
        assert a["target_acc"] != b["target_acc"]  # the poison really reached the test split
        assert a["selected_step"] == b["selected_step"] and a["selection_score"] == b["selection_score"]
        honest = {n for n, info in a["validators"].items() if not info["oracle"]}
        assert honest >= {"source-val", "entropy", "im", "snd", "dev"}
        assert {n: a["validator_scores"][n] for n in honest} == {n: b["validator_scores"][n] for n in honest}
        assert a["validator_scores"]["target-oracle"] != b["validator_scores"]["target-oracle"]
    for name in ("source-val", "entropy", "im", "snd", "dev"):
        picks = [[r["trial"]["index"] for r in annotate(runs, name) if r["selected"]] for runs in (clean, poisoned)]
        assert picks[0] == picks[1] and len(picks[0]) == 1


def test_oracle_checkpoint_selection_does_read_the_poisoned_labels(registry, tmp_path, monkeypatch):
    specs = _trial_specs(registry, {"model_selection": "target-oracle"}, trials=1)
    clean = _run_all(registry, specs, tmp_path / "clean")[0]
    _poison_target_test(monkeypatch)
    poisoned = _run_all(registry, specs, tmp_path / "poisoned")[0]
    assert clean["selection_score"] != poisoned["selection_score"]


def _wait_for_results(directory: Path, count: int, proc, timeout=240):
    start = time.time()
    while time.time() - start < timeout and proc.poll() is None:
        if len(list(directory.glob("*/result.json"))) >= count:
            return True
        time.sleep(0.2)
    return False


def test_a_killed_search_resumes_to_the_same_trial_set(registry, tmp_path):
    out = tmp_path / "runs"
    args = [*GRID, "--search", "3", "--results-dir", out, *TINY_FLAGS]
    proc = subprocess.Popen([sys.executable, "-m", "tlbench.cli.main", *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        assert _wait_for_results(out, 1, proc), "the search never finished a trial"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = {r["run_id"] for r in read_results(out) if r["status"] == "ok"}
    assert 1 <= len(before) < 3
    resumed = run_cli(*args)
    assert resumed.returncode == 0, resumed.stderr
    config = {"backbone": ["smallcnn"], "source": ["toy:a"], "target": ["toy:b"], "strategy": ["finetune"], "loss": ["dann"],
              "shots": [0], "seeds": [0], "search": {"trials": 3},
              "train": {k: v for k, v in TINY.items() if k != "selection_every"}}
    expected = {s.run_id for s in expand_search(config, registry, expand(config, registry))}
    results = read_results(out)
    assert {r["run_id"] for r in results} == expected and all(r["status"] == "ok" for r in results)
    assert "3 runs in grid, 3 already finished" in run_cli(*args).stdout  # nothing left to run


def test_tpe_search_runs_in_rounds_and_a_rerun_replays_it(tmp_path):
    out = tmp_path / "tpe"
    grid = tmp_path / "tpe.toml"
    grid.write_text('[search]\ntrials = 3\nsampler = "tpe"\nstartup = 1\nobjective = "im"\n')
    args = [*GRID, "--grid", grid, "--results-dir", out, *TINY_FLAGS]
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    results = {r["trial"]["index"]: r for r in read_results(out)}
    assert sorted(results) == [0, 1, 2] and all(r["trial"]["sampler"] == "tpe" for r in results.values())
    assert "search:" in first.stdout and "Kendall tau" in first.stdout
    # lose the last trial (as if killed while it ran): the rerun samples it again, identically
    last = next(p for p in out.glob("*trial2*"))
    run_id = json.loads((last / "result.json").read_text())["run_id"]
    (last / "result.json").unlink()
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr
    rerun = {r["trial"]["index"]: r for r in read_results(out)}
    assert rerun[2]["run_id"] == run_id and rerun[2]["trial"]["params"] == results[2]["trial"]["params"]
    assert {r["run_id"] for r in rerun.values()} == {r["run_id"] for r in results.values()}


def test_leaderboard_select_and_selection_table(tmp_path):
    out = tmp_path / "runs"
    assert run_cli(*GRID, "--search", "2", "--results-dir", out, *TINY_FLAGS).returncode == 0
    board = run_cli("leaderboard", out, "--select", "entropy")
    assert board.returncode == 0, board.stderr
    text = " ".join(board.stdout.split())
    assert "the trial that entropy scores best" in text and "oracle" in text
    oracle = run_cli("leaderboard", out, "--select", "target-oracle")
    assert "ORACLE: it reads target test labels" in " ".join(oracle.stdout.split())
    bad = run_cli("leaderboard", out, "--select", "nope")
    assert bad.returncode == 2 and "no trial has a score of that validator; use one of" in bad.stderr
    md = run_cli("leaderboard", out, "--format", "md")
    assert md.returncode == 0 and "source-val scores best" in md.stdout
    rows = selection_rows(read_results(out))
    assert len(rows) == 1 and rows[0]["trials"] == 2 and rows[0]["defaults_acc"] is not None
