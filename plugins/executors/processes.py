"""The ``processes`` executor: a pool of worker processes on this machine.

``--workers N`` processes; with several GPUs each worker owns one device (``--devices
cuda:0,cuda:1``, default every visible GPU); on CPU the cores are divided between the workers
(``torch.set_num_threads``). Workers ignore Ctrl-C: the parent stops them and marks the cells in
flight as interrupted.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
import os
import signal
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace

from tlbench import hookimpl
from tlbench.execution import worker
from tlbench.execution import Executor, default_threads

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
        """At most ``workers`` tasks in flight. When a worker dies, the tasks that were running
        with it are suspects: each runs again alone, and only one that kills its worker alone is
        recorded as crashed; the rest of the grid goes on."""
        queue, suspects, inflight = deque(tasks), deque(), {}
        try:
            while queue or suspects or inflight:
                if suspects:
                    if not inflight:
                        task = suspects.popleft()
                        inflight[self.pool.submit(_run, task, self.config)] = (task, True)
                else:
                    while queue and len(inflight) < self.workers:
                        task = queue.popleft()
                        inflight[self.pool.submit(_run, task, self.config)] = (task, False)
                done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                broken = False
                for future in done:
                    task, alone = inflight.pop(future)
                    try:
                        outcome = future.result()
                    except BrokenProcessPool as exc:  # a worker died (OOM, segfault, os._exit)
                        broken = True
                        if not alone:
                            suspects.append(task)
                            continue
                        outcome = {"status": "crashed", "error": f"worker process died running it ({exc})"}
                    except Exception as exc:
                        outcome = {"status": "crashed", "error": f"{type(exc).__name__}: {exc}"}
                    yield task, outcome
                if broken:
                    suspects.extend(task for task, _ in inflight.values())
                    inflight.clear()
                    self.pool.shutdown(wait=True, cancel_futures=True)
                    self.pool = self._new_pool()
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
