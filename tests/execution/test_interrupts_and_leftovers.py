"""Ctrl-C and what a killed run leaves behind: the resume command is one pasteable line, a second
Ctrl-C exits with 130, and every temp file or folder a kill left in a run directory is removed
when the cell is next claimed."""

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import TOY_PLUGINS, run_cli

GRID = ["--plugins-dir", str(TOY_PLUGINS), "run", "--backbone", "smallcnn", "--source", "toy:a", "--target", "toy:b",
        "--strategy", "finetune,scratch", "--shots", "5", "--seeds", "0,1", "--threads", "1",
        "--set", "train.steps=60", "--set", "train.source_epochs=1", "--set", "train.latency_repeats=2",
        "--set", "train.export_dynamo=false", "--set", "train.int8=false"]


def _start(args, columns: str):
    # a shell's background job inherits SIGINT ignored; give the child the normal Ctrl-C behaviour
    return subprocess.Popen([sys.executable, "-m", "tlbench.cli.main", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "COLUMNS": columns},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for_a_cell(proc, results_dir: Path) -> None:
    deadline = time.monotonic() + 120
    while not any(results_dir.glob("*/.claim")):
        assert proc.poll() is None and time.monotonic() < deadline, "no cell started"
        time.sleep(0.01)


def test_resume_command_is_printed_whole_on_one_line(tmp_path):
    args = [*GRID, "--results-dir", str(tmp_path / "a results dir with spaces")]
    proc = _start(args, columns="40")
    _wait_for_a_cell(proc, tmp_path / "a results dir with spaces")
    proc.send_signal(signal.SIGINT)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, out
    lines = out.splitlines()
    ends = [i for i, line in enumerate(lines) if line.rstrip().endswith("to resume, rerun:")]
    assert len(ends) == 1 and ends[0] + 1 < len(lines), out
    at = ends[0]
    assert lines[at + 1] == "tlbench " + shlex.join(args), out  # longer than the console: not wrapped
    assert shlex.split(lines[at + 1])[1:] == args


def test_a_second_ctrl_c_exits_with_130(tmp_path):
    proc = _start([*GRID, "--results-dir", str(tmp_path), "--executor", "processes", "--workers", "2"], columns="120")
    _wait_for_a_cell(proc, tmp_path)
    proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:  # keep pressing while it cleans up
        time.sleep(0.05)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 130, (proc.returncode, out)
    assert "Traceback" not in out, out


def _run_dirs(results_dir: Path) -> dict:
    return {json.loads(p.read_text())["strategy"]: p.parent for p in results_dir.glob("*/result.json")}


def test_leftovers_of_a_killed_run_are_removed_when_the_cell_is_next_claimed(tmp_path):
    grid = [a if a != "train.steps=60" else "train.steps=5" for a in GRID]
    grid = [a if a != "0,1" else "0" for a in grid]
    first = run_cli(*grid, "--results-dir", tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    run_dir = _run_dirs(tmp_path)["finetune"]
    kept = _run_dirs(tmp_path)["scratch"]
    # what a kill leaves: no result, the quantizer's staging folder, an atomic-write temp file,
    # a bare tempfile file; a user's own files must survive
    (run_dir / "result.json").unlink()
    (run_dir / "tmpk3x_9q2a").mkdir()
    (run_dir / "tmpk3x_9q2a" / "prepared.onnx").write_bytes(b"half a model")
    (run_dir / "tmpk3x_9q2a" / "int8.onnx").write_bytes(b"")
    (run_dir / ".model.onnx.a1b2c3.tmp").write_bytes(b"partial")
    (run_dir / "tmp0abc12zz").write_bytes(b"partial")
    (run_dir / "tmp-notes").mkdir()
    (run_dir / "my notes.txt").write_text("mine")
    (kept / "tmpzzzzzzzz").mkdir()  # a finished cell is not claimed again, so it is not touched
    second = run_cli(*grid, "--results-dir", tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "1 to run" in second.stdout
    assert json.loads((run_dir / "result.json").read_text())["status"] == "ok"
    assert not (run_dir / "tmpk3x_9q2a").exists()
    assert not (run_dir / ".model.onnx.a1b2c3.tmp").exists() and not (run_dir / "tmp0abc12zz").exists()
    assert (run_dir / "tmp-notes").is_dir() and (run_dir / "my notes.txt").read_text() == "mine"
    assert (kept / "tmpzzzzzzzz").is_dir()


def test_remove_stale_temps_leaves_other_names_alone(tmp_path):
    from tlbench.execution.results import remove_stale_temps

    (tmp_path / "tmpabcdefgh").mkdir()
    (tmp_path / "tmpabcdefgh" / "x").write_text("x")
    (tmp_path / ".result.json.x1y2.tmp").write_text("x")
    for name in ("tmpABCDEFGH", "tmpabc", "model.onnx", "result.json"):
        (tmp_path / name).write_text("keep")
    # a source-cache call names one file: only that file's temps go
    assert remove_stale_temps(tmp_path, "model.pt") == 0 and (tmp_path / "tmpabcdefgh").exists()
    assert remove_stale_temps(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "result.json", "tmpABCDEFGH", "tmpabc"]
