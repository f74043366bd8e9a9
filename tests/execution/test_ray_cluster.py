"""The ray executor on a two-node cluster (Ray's own test cluster: a head and a second node with
their own CPUs, on this machine, sharing one results folder): the grid's accuracies equal the
local executor's; workers import the installed tlbench whatever folder the grid is launched
from; a killed worker's cell is retried once; a failing task is told by its real cause; an
address that does not answer fails fast, on one line, with exit code 2.

One cluster serves the whole module (Ray takes seconds to start); every grid is a few cells
with a handful of training steps.
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import TOY_GRID, TOY_GRID_CELLS
from conftest import run_cli as _run_cli


def run_cli(*args, **kwargs):
    """Ray starts and stops its own processes: these tests run the CLI in a subprocess."""
    return _run_cli(*args, isolate=True, **kwargs)

ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")

from tlbench_plugins.executors import ray_support  # noqa: E402

GRID = TOY_GRID
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "OMP_NUM_THREADS": "1"}
CONSOLE_SCRIPT = Path(sys.executable).with_name("tlbench")  # as a user runs it, not `python -m`


def summary(directory) -> dict:
    """run_id -> (status, accuracies) of every result under ``directory``."""
    out = {}
    for path in sorted(Path(directory).glob("*/result.json")):
        r = json.loads(path.read_text())
        out[r["run_id"]] = (r["status"], r.get("target_acc"), r.get("source_acc"), r.get("onnx_target_acc"))
    return out


def run_cli_script(*args, cwd):
    """The ``tlbench`` console script, run from ``cwd``, as a user launches it."""
    assert CONSOLE_SCRIPT.is_file(), CONSOLE_SCRIPT
    return subprocess.run([str(CONSOLE_SCRIPT), *map(str, args)], capture_output=True, text=True, cwd=cwd, env=ENV,
                          timeout=600)


@pytest.fixture(scope="module")
def reference(toy_grid):
    """The shared toy grid, run by the local executor."""
    result = summary(toy_grid)
    assert len(result) == TOY_GRID_CELLS
    return result


@pytest.fixture(scope="module")
def cluster():
    """A head node and a second node, one CPU each; this test process is not connected to it."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    head = cluster_utils.Cluster(initialize_head=True,
                                 head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        head.add_node(num_cpus=1)
        head.wait_for_nodes()
        yield head
    finally:
        if ray.is_initialized():
            ray.shutdown()
        head.shutdown()


@pytest.mark.slow
def test_two_node_cluster_grid_equals_the_local_one(cluster, reference, tmp_path):
    proc = run_cli(*GRID, "--results-dir", tmp_path, "--executor", "ray", "--ray-address", cluster.address, env=ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert summary(tmp_path) == reference
    assert "on 2 Ray nodes" in proc.stdout, proc.stdout  # both nodes took tasks
    results = [json.loads(p.read_text()) for p in tmp_path.glob("*/result.json")]
    assert all(r["source_cached"] for r in results)  # each source model trained once, in phase one
    assert not list(tmp_path.glob("*/.claim"))


@pytest.mark.slow
def test_launched_from_a_folder_holding_a_tlbench_folder(cluster, reference, tmp_path):
    # Ray puts the driver's folder first on its workers' import path: this package must not win
    launch = tmp_path / "launch"
    (launch / "tlbench").mkdir(parents=True)
    (launch / "tlbench" / "__init__.py").write_text('raise RuntimeError("imported the tlbench of the launch folder")\n')
    grid = [str(a) for a in GRID]
    proc = run_cli_script(*grid, "--results-dir", tmp_path / "runs", "--executor", "ray", "--ray-address", cluster.address,
                          cwd=launch)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert summary(tmp_path / "runs") == reference


KILLING_LOSSES = '''
import os
import signal
from pathlib import Path

from tlbench import hookimpl
from tlbench.plugin.contracts import AdaptationLoss

MARK = Path(__file__).with_name("killed-once")


class KillOnce(AdaptationLoss):
    """Kills its worker process the first time it runs anywhere, then behaves."""

    def forward(self, batch):
        if not MARK.exists():
            MARK.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return batch.source_features.sum() * 0.0


class KillAlways(AdaptationLoss):
    def forward(self, batch):
        os.kill(os.getpid(), signal.SIGKILL)


@hookimpl
def register_adaptation_losses(register):
    register("killonce", KillOnce)
    register("killalways", KillAlways)
'''


@pytest.mark.slow
def test_a_killed_ray_worker_is_retried_once_then_recorded(cluster, tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "killing_losses.py").write_text(KILLING_LOSSES)
    grid = [a if a != "finetune,scratch" else "finetune" for a in GRID]
    grid = [a if a != "0,1" else "0" for a in grid]
    proc = run_cli("--plugins-dir", plugins, *grid, "--loss", "killonce,killalways", "--results-dir", tmp_path / "runs",
                   "--executor", "ray", "--ray-address", cluster.address, env=ENV)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert (plugins / "killed-once").exists()  # the first attempt really died
    by_loss = {}
    for path in (tmp_path / "runs").glob("*/result.json"):
        record = json.loads(path.read_text())
        by_loss[record["loss"]] = (record, path.parent)
    assert by_loss["killonce"][0]["status"] == "ok", by_loss["killonce"][0]
    failed, run_dir = by_loss["killalways"]
    assert failed["status"] == "failed" and failed["error"].startswith("Ray worker died running it, and again on its retry")
    assert "\x1b" not in failed["error"] and "\x1b" not in (run_dir / "error.log").read_text()
    assert not list((tmp_path / "runs").glob("*/.claim"))


def test_a_failing_task_is_told_by_its_cause_without_colour_codes(cluster):
    if not ray.is_initialized():
        ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)

    @ray.remote(num_cpus=1)
    def fails():
        raise ValueError("the real reason\nsecond line")

    with pytest.raises(ray.exceptions.RayTaskError) as caught:
        ray.get(fails.remote())
    error, details = ray_support.describe_failure(caught.value)
    assert error == "ValueError: the real reason"
    assert "ValueError" in details and "\x1b" not in details


def test_colour_codes_are_stripped():
    raw = "RayTaskError(RuntimeError): \x1b[36mray::_run_remote()\x1b[39m (pid=1)"
    assert ray_support.strip_ansi(raw) == "RayTaskError(RuntimeError): ray::_run_remote() (pid=1)"
    assert ray_support.first_line("\x1b[31m\n  boom \x1b[0m\nmore") == "boom"


def _one_error_line(proc) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: cannot reach a Ray cluster at ") and "Traceback" not in proc.stderr
    return lines[0]


def test_an_unreachable_address_fails_at_once_on_one_line(tmp_path):
    started = time.monotonic()
    proc = run_cli(*GRID, "--results-dir", tmp_path, "--executor", "ray", "--ray-address", "127.0.0.1:1", env=ENV,
                   timeout=120)
    elapsed = time.monotonic() - started
    assert proc.returncode == 2, proc.stdout + proc.stderr
    line = _one_error_line(proc)
    assert "127.0.0.1:1" in line and "ray start --head" in line
    assert elapsed < ray_support.CONNECT_TIMEOUT_S, elapsed  # refused at once, not after the timeout
    assert not list(tmp_path.glob("*/result.json"))


def test_an_address_that_never_answers_gives_up_after_the_connect_timeout(tmp_path):
    listener = socket.socket()  # accepts the TCP connection, never speaks Ray's protocol
    listener.bind(("0.0.0.0", 0))  # Ray connects to this host by its node address, not 127.0.0.1
    listener.listen(16)
    port = listener.getsockname()[1]
    try:
        started = time.monotonic()
        proc = run_cli(*GRID, "--results-dir", tmp_path, "--executor", "ray", "--ray-address", f"127.0.0.1:{port}",
                       env={**ENV, ray_support.TIMEOUT_ENV: "4"}, timeout=120)
        elapsed = time.monotonic() - started
    finally:
        listener.close()
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "no answer within 4s" in _one_error_line(proc)
    assert elapsed < 4 + 60, elapsed  # the 4 s budget plus interpreter and torch start-up, not Ray's minutes


def test_a_bad_connect_timeout_is_a_user_error(tmp_path):
    proc = run_cli(*GRID, "--results-dir", tmp_path, "--executor", "ray", "--ray-address", "127.0.0.1:1",
                   env={**ENV, ray_support.TIMEOUT_ENV: "soon"}, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().startswith("error: TLBENCH_RAY_CONNECT_TIMEOUT='soon'"), proc.stderr
