import json
import subprocess
import sys
from pathlib import Path

import pytest

from tlbench.plugin.discovery import load_plugins

TESTS = Path(__file__).parent
TOY_PLUGINS = TESTS / "plugins_toy"
FAST_TRAIN = ["--set", "train.steps=4", "--set", "train.source_epochs=1", "--set", "train.latency_repeats=2",
              "--set", "train.export_dynamo=false"]


@pytest.fixture(scope="session")
def registry():
    """Every installed plugin plus the tests' toy dataset."""
    return load_plugins([TOY_PLUGINS])[1]


def run_cli(*args, env=None, cwd=None, timeout=600):
    """Run the tlbench CLI in a subprocess; returns CompletedProcess with text output."""
    return subprocess.run(
        [sys.executable, "-m", "tlbench.cli.main", *map(str, args)],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout,
    )


def read_results(directory):
    return [json.loads(p.read_text()) for p in sorted(Path(directory).glob("*/result.json"))]
