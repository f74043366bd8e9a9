"""Executors give the same results; a grid survives SIGKILL and a second process on its dir.

Determinism across executors: every run passes ``--threads 1``, so each cell does its float
sums with one torch thread whichever process runs it; every cell seeds its own generators from
its spec, and source models are trained once (first phase) and read back from the cache, so a
cell's numbers do not depend on which process, or which earlier cell, came first.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import TOY_GRID, TOY_GRID_CELLS, run_cli

CELLS = TOY_GRID_CELLS

GRID = TOY_GRID


def summary(directory) -> dict:
    """run_id -> (status, accuracies) for every result under ``directory``."""
    out = {}
    for path in sorted(Path(directory).glob("*/result.json")):
        r = json.loads(path.read_text())
        out[r["run_id"]] = (r["status"], r.get("target_acc"), r.get("source_acc"), r.get("onnx_target_acc"))
    return out


@pytest.fixture(scope="module")
def reference(toy_grid):
    """The shared toy grid, run once, uninterrupted, by the local executor."""
    result = summary(toy_grid)
    assert len(result) == TOY_GRID_CELLS
    return result


@pytest.mark.parametrize("executor", [["processes", "--workers", "2"], ["ray", "--workers", "2"]], ids=["processes", "ray"])
def test_executors_match_local(executor, reference, tmp_path):
    if executor[0] == "ray":
        pytest.importorskip("ray")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    proc = run_cli(*GRID, "--results-dir", tmp_path, "--executor", *executor, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert summary(tmp_path) == reference
    # each source model was trained once, in the first phase: every cell found it cached
    results = [json.loads(p.read_text()) for p in tmp_path.glob("*/result.json")]
    assert all(r["source_cached"] for r in results)
    assert len(list((tmp_path / ".cache" / "sources").glob("*.pt"))) == 2
    assert not list(tmp_path.glob("*/.claim"))


def _start(directory):
    return subprocess.Popen([sys.executable, "-m", "tlbench.cli.main", *map(str, GRID), "--results-dir", str(directory)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _kill_when(proc, condition, limit=120.0) -> bool:
    """SIGKILL ``proc`` as soon as ``condition()`` holds; False if it finished first."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if condition():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    raise AssertionError("the grid neither finished nor reached the kill point")


@pytest.mark.slow
def test_sigkill_at_several_moments_then_resume_gives_the_same_results(reference, tmp_path):
    cache = tmp_path / ".cache" / "sources"
    ok = lambda: sum(v[0] == "ok" for v in summary(tmp_path).values())  # noqa: E731
    moments = [
        ("while training the first source model", lambda: any(cache.glob("*.lock"))),
        ("in the middle of a cell", lambda: any(tmp_path.glob("*/.claim"))),
        ("right after a model file was written", lambda: any(
            (p.parent / "result.json").exists() is False for p in tmp_path.glob("*/model.pt"))),
    ]
    killed = []
    for what, condition in moments:
        before = ok()
        if before == CELLS:
            break
        if _kill_when(_start(tmp_path), condition):
            killed.append(what)
            assert ok() < CELLS
    assert len(killed) == 3, f"the grid finished before a kill point: {killed}"
    # nothing half-written is ever read as a result
    for path in tmp_path.glob("*/result.json"):
        json.loads(path.read_text())
    proc = run_cli(*GRID, "--results-dir", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert summary(tmp_path) == reference
    assert not list(tmp_path.glob("*/.claim"))


def test_two_runs_on_one_results_dir_do_not_duplicate_cells(reference, tmp_path):
    first, second = (subprocess.Popen(
        [sys.executable, "-m", "tlbench.cli.main", *map(str, GRID), "--results-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "COLUMNS": "250"},
    ) for _ in range(2))
    outputs = [p.communicate(timeout=300)[0] for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    assert summary(tmp_path) == reference
    # each cell ran in exactly one of the two processes (the other skipped it or found it done)
    ran = sum(len(re.findall(r": target acc \d", out)) for out in outputs)
    assert ran == CELLS, outputs
    sources_trained = sum(out.count("trained source model") for out in outputs)
    assert sources_trained == 2, outputs


def test_ctrl_c_marks_cells_in_flight_and_says_how_to_resume(tmp_path):
    # a shell's background job inherits SIGINT ignored; give the child the normal Ctrl-C behaviour
    proc = subprocess.Popen([sys.executable, "-m", "tlbench.cli.main", *map(str, GRID), "--results-dir", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "COLUMNS": "250"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not any(tmp_path.glob("*/.claim")):
        assert proc.poll() is None and time.monotonic() < deadline, "no cell started"
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 130, out
    assert "interrupted" in out and "to resume, rerun:\ntlbench " in out and "Traceback" not in out, out
    statuses = [v[0] for v in summary(tmp_path).values()]
    assert "interrupted" in statuses
    assert not list(tmp_path.glob("*/.claim"))


HOSTILE_LOSSES = '''
import os
import torch
from tlbench import hookimpl
from tlbench.plugin.contracts import AdaptationLoss


class NanLoss(AdaptationLoss):
    def forward(self, batch):
        return batch.source_features.sum() * float("nan")


class KillWorker(AdaptationLoss):
    def forward(self, batch):
        os._exit(3)  # the process dies without a word, like an OOM kill


@hookimpl
def register_adaptation_losses(register):
    register("nanloss", NanLoss)
    register("killworker", KillWorker)
'''


def test_processes_executor_isolates_nan_and_dying_workers(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "hostile_losses.py").write_text(HOSTILE_LOSSES)
    grid = [a if a != "finetune,scratch" else "finetune" for a in GRID]
    grid = [a if a != "0,1" else "0" for a in grid]
    proc = run_cli("--plugins-dir", plugins, *grid, "--loss", "none,nanloss,killworker", "--results-dir", tmp_path / "runs",
                   "--executor", "processes", "--workers", "2")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    by_loss = {json.loads(p.read_text())["loss"]: json.loads(p.read_text()) for p in (tmp_path / "runs").glob("*/result.json")}
    assert by_loss["none"]["status"] == "ok"
    assert by_loss["nanloss"]["status"] == "failed" and "NonFiniteLoss" in by_loss["nanloss"]["error"]
    assert by_loss["killworker"]["status"] == "failed" and "worker process died" in by_loss["killworker"]["error"]
    assert "failed or interrupted runs" in proc.stdout
