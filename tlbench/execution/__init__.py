"""Execution and storage: the runner (source cache -> transfer -> evaluate -> export -> record),
executors and their workers, claims, caches and atomic result files.

The executor contract is importable from here, as executor plugins do::

    from tlbench.execution import Executor, Task, default_threads

The names load on first use, so reading result files (tlbench.execution.results, which
``tlbench predict`` does to guard run directories) never imports torch.
"""

__all__ = ["Executor", "ExecutorSettings", "Task", "WorkerConfig", "default_threads", "resolve_settings"]


def __getattr__(name: str):
    if name in __all__:
        from tlbench.execution import contract

        return getattr(contract, name)
    raise AttributeError(f"module 'tlbench.execution' has no attribute {name!r}")
