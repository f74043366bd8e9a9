"""The ``processes`` executor: a pool of worker processes on this machine.

``--workers N`` processes; with several GPUs each worker owns one device (``--devices
cuda:0,cuda:1``, default every visible GPU); on CPU the cores are divided between the workers
(``torch.set_num_threads``). Workers ignore Ctrl-C: the parent stops them and marks the cells in
flight as interrupted.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace

from tlbench import hookimpl, worker
from tlbench.execution import Executor, Task, default_threads

MAX_RETRIES = 1  # a task whose worker died is run once more before it is recorded as crashed

_DEVICE: str | None = None


def _init_worker(devices) -> None:
    global _DEVICE
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _DEVICE = devices.get()


def _run(task, config):
    return worker.execute(task, replace(config, device=_DEVICE or config.device))


def _gpu_devices(device: str) -> list[str]:
    if not device.startswith("cuda"):
        return []
    import torch

    count = torch.cuda.device_count()
    return [f"cuda:{i}" for i in range(count)] if count > 1 and device == "cuda" else []


class ProcessExecutor(Executor):
    """Runs tasks in ``workers`` spawned processes, one device per worker."""

    name = "processes"
    options = ("workers", "devices")

    def __init__(self, settings, config, registry=None, log=print):
        super().__init__(settings, config, registry, log)
        self.devices = settings.devices or _gpu_devices(config.device) or [config.device]
        gpus = [d for d in self.devices if d.startswith("cuda")]
        self.workers = settings.workers or (len(gpus) if gpus else max(1, os.cpu_count() or 1))
        threads = settings.threads or default_threads(self.workers)
        self.config = replace(config, threads=threads)
        self.pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        ctx = multiprocessing.get_context("spawn")  # fork after torch/CUDA init is unsafe
        slots = ctx.Queue()
        for i in range(self.workers):
            slots.put(self.devices[i % len(self.devices)])
        return ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init_worker, initargs=(slots,))

    def describe(self) -> str:
        return f"{self.workers} worker processes on {', '.join(self.devices)} ({self.config.threads} CPU threads each)"

    def run_tasks(self, tasks):
        futures = {self.pool.submit(_run, task, self.config): task for task in tasks}
        crashes: dict[Task, int] = {}
        try:
            while futures:
                done, _ = wait(futures, return_when=FIRST_COMPLETED)
                retry = []
                for future in done:
                    task = futures.pop(future)
                    try:
                        outcome = future.result()
                    except BrokenProcessPool as exc:  # a worker died (OOM, segfault, os._exit)
                        # every task in the pool fails with it: retry each once on a fresh pool,
                        # so only a task that kills its worker twice is recorded as crashed
                        crashes[task] = crashes.get(task, 0) + 1
                        if crashes[task] <= MAX_RETRIES:
                            retry.append(task)
                            continue
                        outcome = {"status": "crashed", "error": f"worker process died running it ({exc})"}
                    except Exception as exc:
                        outcome = {"status": "crashed", "error": f"{type(exc).__name__}: {exc}"}
                    yield task, outcome
                if retry:
                    retry += [futures.pop(f) for f in list(futures)]
                    self.pool.shutdown(wait=True, cancel_futures=True)
                    self.pool = self._new_pool()
                    futures = {self.pool.submit(_run, task, self.config): task for task in retry}
        except BaseException:
            self._stop()
            raise

    def _stop(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        children = multiprocessing.active_children()
        for child in children:
            child.terminate()
        for child in children:
            child.join(5)

    def close(self) -> None:
        self.pool.shutdown(wait=True)


@hookimpl
def register_executors(register):
    register("processes", ProcessExecutor, description="worker processes on this machine, one device each")
