"""The ``ray`` executor: each task is a Ray task, on a cluster or on a local Ray instance.

``--ray-address auto|HOST:PORT`` joins an existing cluster (the results dir must then be on a
filesystem every node sees); without it a local instance with ``--workers`` CPUs is started and
stopped again. Each task reserves ``--threads`` CPUs (and one GPU when the cluster has GPUs).
Needs the optional extra: ``pip install 'tlbench[ray]'``.
"""

from __future__ import annotations

import os
from dataclasses import replace

from tlbench import hookimpl
from tlbench.execution import worker
from tlbench.plugin.errors import UserError
from tlbench.execution import Executor, default_threads


def _run_remote(task, config):
    return worker.execute(task, config)


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
        try:
            if self.address:
                ray.init(address=self.address, log_to_driver=False, configure_logging=False)
            else:
                self.workers = settings.workers or max(1, os.cpu_count() or 1)
                ray.init(num_cpus=self.workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise UserError(f"cannot reach Ray at {self.address or 'a new local instance'}: {str(exc).splitlines()[0]}") from None
        resources = ray.cluster_resources()
        self.gpus = int(resources.get("GPU", 0))
        cpus = int(resources.get("CPU", 1))
        threads = settings.threads or (default_threads(settings.workers or cpus) if not self.address else 1)
        self.threads = max(1, min(threads, cpus))
        self.config = replace(config, device="cuda" if self.gpus else "cpu", threads=self.threads)
        self.remote = ray.remote(_run_remote).options(num_cpus=self.threads, num_gpus=1 if self.gpus else 0, max_retries=0)

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
                    except Exception as exc:  # the task's worker died or the cluster lost it
                        outcome = {"status": "crashed", "error": f"Ray task failed: {type(exc).__name__}: {str(exc).splitlines()[0]}"}
                    yield task, outcome
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise

    def close(self) -> None:
        self.ray.shutdown()


@hookimpl
def register_executors(register):
    register("ray", RayExecutor, description="Ray tasks on a cluster or a local instance (tlbench[ray])")
