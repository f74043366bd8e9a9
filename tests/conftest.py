import contextlib
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tlbench.plugin.discovery import load_plugins

TESTS = Path(__file__).parent
TOY_PLUGINS = TESTS / "plugins_toy"
FAST_TRAIN = ["--set", "train.steps=4", "--set", "train.source_epochs=1", "--set", "train.latency_repeats=2",
              "--set", "train.export_dynamo=false", "--set", "train.int8=false"]  # INT8 tests opt in
# The toy grid every module that needs "a finished grid" reads (fixture ``toy_grid``): 2 strategies x 2 seeds.
TOY_GRID = ["--plugins-dir", TOY_PLUGINS, "run", "--backbone", "smallcnn", "--source", "toy:a", "--target", "toy:b",
            "--strategy", "finetune,scratch", "--shots", "5", "--seeds", "0,1", "--threads", "1", *FAST_TRAIN]
TOY_GRID_CELLS = 4


@pytest.fixture(scope="session", autouse=True)
def decode_cache_dir(tmp_path_factory):
    """Lazy datasets decode into a folder of this test session, never the user's ~/.cache."""
    folder = tmp_path_factory.mktemp("decode-cache")
    saved = os.environ.get("TLBENCH_CACHE_DIR")
    os.environ["TLBENCH_CACHE_DIR"] = str(folder)
    yield folder
    if saved is None:
        os.environ.pop("TLBENCH_CACHE_DIR", None)
    else:
        os.environ["TLBENCH_CACHE_DIR"] = saved


def _tree_digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def toy_grid(tmp_path_factory):
    """``TOY_GRID`` run once for the whole session by the local executor: its results folder.

    Shared and read-only: a test that changes files copies it first (``shutil.copytree``). The
    fixture checks at the end of the session that no file in it was changed, added or removed."""
    folder = tmp_path_factory.mktemp("toy-grid") / "runs"
    done = run_cli(*TOY_GRID, "--results-dir", folder)
    assert done.returncode == 0, done.stdout + done.stderr
    results = read_results(folder)
    assert len(results) == TOY_GRID_CELLS and all(r["status"] == "ok" for r in results)
    before = _tree_digest(folder)
    yield folder
    assert _tree_digest(folder) == before, "a test changed the shared toy_grid; copy it before changing files"


@pytest.fixture(scope="session")
def registry():
    """Every installed plugin plus the tests' toy dataset."""
    return load_plugins([TOY_PLUGINS])[1]


def run_cli(*args, env=None, cwd=None, timeout=600, isolate=False):
    """Run the tlbench CLI; returns a CompletedProcess with text output.

    In this process by default (``main(argv)`` with stdout/stderr captured, ``env`` and ``cwd``
    applied and restored, torch's thread count and the SIGINT handler restored); ``isolate=True``
    starts a subprocess where process isolation is the point (signals, a broken pipe, a fresh
    interpreter's imports)."""
    argv = [str(a) for a in args]
    if isolate:
        return subprocess.run([sys.executable, "-m", "tlbench.cli.main", *argv],
                              capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
    from tlbench.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    threads, handler = torch.get_num_threads(), signal.getsignal(signal.SIGINT)
    try:
        if env is not None:
            os.environ.clear()
            os.environ.update(env)
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        torch.set_num_threads(threads)
        signal.signal(signal.SIGINT, handler)
    return subprocess.CompletedProcess(["tlbench", *argv], code, out.getvalue(), err.getvalue())


def read_results(directory):
    return [json.loads(p.read_text()) for p in sorted(Path(directory).glob("*/result.json"))]
