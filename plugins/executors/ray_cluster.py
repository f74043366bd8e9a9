"""The ``ray`` executor: each task is a Ray task, on a cluster or on a local Ray instance.

``--ray-address auto|HOST:PORT`` joins an existing cluster (the results dir must then be on a
filesystem every node sees); without it a local instance with ``--workers`` CPUs is started and
stopped again. Each task reserves ``--threads`` CPUs (and one GPU when the cluster has GPUs).
Needs the optional extra: ``pip install 'tlbench[ray]'``.

Workers import the installed ``tlbench`` and plugin packages whatever folder the grid is
launched from (see ``ray_support``); joining a cluster that does not answer fails on one line
within a bounded time; a task whose worker dies is retried once, on a new worker, before its
cell is recorded as failed; a failing task is reported by the exception raised in the worker.
"""

from __future__ import annotations

import os
from dataclasses import replace

from tlbench import hookimpl
from tlbench.execution import worker
from tlbench.plugin.errors import UserError
from tlbench.execution import Executor, default_threads
from tlbench_plugins.executors import ray_support

SYSTEM_RETRIES = 1  # a task whose worker process dies runs once more; its own exceptions do not


def _run_remote(task, config):
    import ray

    return {**worker.execute(task, config), "ray_node": ray.get_runtime_context().get_node_id()}


class RayExecutor(Executor):
    """Submits every task to Ray and yields outcomes as they finish."""

    name = "ray"
    options = ("workers", "ray_address")

    @staticmethod
    def check_settings(settings) -> None:
        try:
            import ray  # noqa: F401
        except ImportError:
            raise UserError("the ray executor needs Ray: pip install 'tlbench[ray]'") from None

    def __init__(self, settings, config, registry=None, log=print):
        super().__init__(settings, config, registry, log)
        import ray

        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        self.ray = ray
        self.address = settings.ray_address
        self.nodes: set[str] = set()
        self.tasks_done = 0
        quiet = dict(log_to_driver=False, configure_logging=False, runtime_env=ray_support.runtime_env())
        if self.address:
            ray_support.init_cluster(ray, self.address, **quiet)
        else:
            self.workers = settings.workers or max(1, os.cpu_count() or 1)
            try:
                ray.init(num_cpus=self.workers, include_dashboard=False, **quiet)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise UserError(f"cannot start a local Ray instance: {ray_support.message_line(exc)}") from None
        resources = ray.cluster_resources()
        self.gpus = int(resources.get("GPU", 0))
        cpus = int(resources.get("CPU", 1))
        threads = settings.threads or (default_threads(settings.workers or cpus) if not self.address else 1)
        self.threads = max(1, min(threads, cpus))
        self.config = replace(config, device="cuda" if self.gpus else "cpu", threads=self.threads)
        self.remote = ray.remote(_run_remote).options(num_cpus=self.threads, num_gpus=1 if self.gpus else 0,
                                                       max_retries=SYSTEM_RETRIES, retry_exceptions=False)

    def describe(self) -> str:
        where = f"Ray cluster {self.address}" if self.address else "a local Ray instance"
        gpus = f", 1 of {self.gpus} GPUs each" if self.gpus else ""
        return f"{where} ({self.threads} CPUs per task{gpus})"

    def run_tasks(self, tasks):
        ray = self.ray
        pending = {self.remote.remote(task, self.config): task for task in tasks}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    task = pending.pop(ref)
                    try:
                        outcome = ray.get(ref)
                    except Exception as exc:  # raised outside the runner, or the worker died twice
                        error, details = ray_support.describe_failure(exc)
                        outcome = {"status": "crashed", "error": error, "traceback": details}
                    self.tasks_done += 1
                    self.nodes.add(outcome.get("ray_node") or "?")
                    yield task, outcome
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise

    def close(self) -> None:
        nodes = len(self.nodes - {"?"})
        if self.tasks_done and nodes:
            self.log(f"Ray ran {self.tasks_done} tasks on {nodes} Ray node{'s' if nodes > 1 else ''}")
        self.ray.shutdown()


@hookimpl
def register_executors(register):
    register("ray", RayExecutor, description="Ray tasks on a cluster or a local instance (tlbench[ray])")
