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
