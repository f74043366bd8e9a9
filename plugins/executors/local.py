"""The ``local`` executor: every task in this process, one after another (the default)."""

from __future__ import annotations

from tlbench import hookimpl
from tlbench.execution import worker
from tlbench.execution import Executor


class LocalExecutor(Executor):
    """Runs tasks sequentially in the calling process, reusing its loaded plugins and data."""

    name = "local"
    options = ()

    def __init__(self, settings, config, registry=None, log=print):
        super().__init__(settings, config, registry, log)
        worker.install(config, registry, log)

    def describe(self) -> str:
        return f"this process on {self.config.device}"

    def run_tasks(self, tasks):
        for task in tasks:
            yield task, worker.execute(task, self.config)


@hookimpl
def register_executors(register):
    register("local", LocalExecutor, description="in-process, sequential (default)")
