"""Execution and storage: the runner (source cache -> transfer -> evaluate -> export -> record),
executors and their workers, claims, caches and atomic result files.

The executor contract is importable from here, as executor plugins do::

    from tlbench.execution import Executor, Task, default_threads
"""

from tlbench.execution.contract import (
    Executor, ExecutorSettings, Task, WorkerConfig, default_threads, resolve_settings,
)

__all__ = ["Executor", "ExecutorSettings", "Task", "WorkerConfig", "default_threads", "resolve_settings"]
