"""The executor contract and its settings: where grid tasks run (see ``register_executors``).

A grid is run in two phases of :class:`Task`: first one ``source`` task per distinct source model
(so each is trained once and shared through the cache), then one ``cell`` task per unfinished
grid cell. An executor only decides *where* a task runs; what a task does is always
:func:`tlbench.execution.worker.execute`, so every executor writes the same result files.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Callable, Iterator

from tlbench.plugin.errors import UserError
from tlbench.grid import RunSpec
MAX_WORKERS = 1024
DEVICE_PATTERN = re.compile(r"^(cpu|cuda(:[0-9]+)?|mps)\Z")


@dataclass(frozen=True)
class Task:
    """One unit of work: train a source model (``kind="source"``) or run one grid cell."""

    kind: str
    spec: RunSpec

    @property
    def label(self) -> str:
        s = self.spec
        if self.kind == "source":
            return f"source model {s.backbone} on {s.source} (seed {s.seed})"
        return f"{s.backbone} {s.source}->{s.target} {s.strategy}/{s.loss} shots={s.shots} seed={s.seed}"


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker process needs to rebuild the registry and run tasks (picklable)."""

    results_dir: str
    plugins_dirs: tuple[str, ...] = ()
    device: str = "cpu"
    threads: int | None = None  # torch CPU threads per task; None leaves torch's default


@dataclass
class ExecutorSettings:
    """Validated executor choice and options, from the grid file and the CLI flags."""

    executor: str = "local"
    workers: int | None = None
    devices: list[str] = field(default_factory=list)
    ray_address: str | None = None
    threads: int | None = None

    def given(self) -> dict:
        """The options the user set (executor name excluded)."""
        out = {"workers": self.workers, "devices": self.devices or None, "ray_address": self.ray_address}
        return {k: v for k, v in out.items() if v is not None}


class Executor:
    """Runs tasks somewhere. Subclass, set ``name``/``options`` and implement ``run_tasks``.

    ``options`` lists which of ``workers``, ``devices``, ``ray_address`` the executor accepts;
    giving any other is a UserError before anything runs.
    """

    name = "executor"
    options: tuple[str, ...] = ()

    def __init__(self, settings: ExecutorSettings, config: WorkerConfig, registry=None, log: Callable = print):
        self.settings = settings
        self.config = config
        self.registry = registry
        self.log = log

    def describe(self) -> str:
        """A few words for the grid header, e.g. ``2 worker processes on cpu``."""
        return self.name

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Release workers or cluster connections."""

    def run_tasks(self, tasks: list[Task]) -> Iterator[tuple[Task, dict]]:
        """Run ``tasks`` and yield ``(task, outcome)`` as each finishes, in any order.

        The outcome is what :func:`tlbench.execution.worker.execute` returned. On KeyboardInterrupt the
        executor stops its workers and re-raises; the core then marks cells in flight.
        """
        raise NotImplementedError


def _positive_int(what: str, value, high: int) -> int:
    text = value.strip() if isinstance(value, str) else ""
    if re.fullmatch(r"-?[0-9]+", text):  # ASCII digits only: "²".isdigit() is True but int() refuses it
        if len(text) > 18:  # int() of thousands of digits raises; this many are out of range anyway
            raise UserError(f"{what} = {text[:20]}... is out of range; use 1..{high}")
        value = int(text)
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"{what} must be a whole number, got {value!r}")
    if not 1 <= value <= high:
        raise UserError(f"{what} = {value} is out of range; use 1..{high}")
    return value


def resolve_settings(config: dict, registry) -> ExecutorSettings:
    """Validate the ``executor``, ``workers``, ``devices``, ``ray_address`` and ``threads`` keys."""
    name = config.get("executor", "local")
    if not isinstance(name, str) or not name:
        raise UserError(f"executor must be a name like local, processes or ray, got {name!r}")
    entry = registry.get("executors", name)
    settings = ExecutorSettings(executor=name)
    if config.get("workers") is not None:
        settings.workers = _positive_int("workers", config["workers"], MAX_WORKERS)
    if config.get("threads") is not None:
        settings.threads = _positive_int("threads", config["threads"], 4096)
    devices = config.get("devices")
    if devices is not None:
        if isinstance(devices, str):
            devices = [d.strip() for d in devices.split(",") if d.strip()]
        if not isinstance(devices, list) or not devices:
            raise UserError("devices must be a non-empty list like cuda:0,cuda:1")
        for device in devices:
            if not isinstance(device, str) or not DEVICE_PATTERN.match(device):
                raise UserError(f"device {device!r} in devices is not cpu, cuda or cuda:N")
        settings.devices = list(dict.fromkeys(devices))
    address = config.get("ray_address")
    if address is not None:
        if not isinstance(address, str) or not address.strip() or " " in address.strip():
            raise UserError(f"ray_address must be 'auto' or HOST:PORT, got {address!r}")
        settings.ray_address = address.strip()
    accepted = tuple(getattr(entry.obj, "options", ()))
    for key in settings.given():
        if key not in accepted:
            takes = ", ".join(accepted) or "no options"
            raise UserError(f"executor {name!r} does not take `{key.replace('_', '-')}` (it takes {takes})")
    for device in settings.devices:  # known now, not when a worker first touches the device
        check_device_exists(device, "devices")
    check = getattr(entry.obj, "check_settings", None)
    if check is not None:
        check(settings)
    return settings


def check_device_exists(device: str, where: str) -> None:
    """UserError unless ``device`` (cpu, cuda, cuda:N, mps) is present on this machine."""
    if device == "cpu":
        return
    import torch

    if device == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise UserError(f"device 'mps' in {where} is not available on this machine; use cpu")
        return
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = int(device.partition(":")[2] or 0)
    if index >= count:
        have = f"it has {count} GPU(s): " + ", ".join(f"cuda:{i}" for i in range(count)) if count else "torch sees no GPU"
        raise UserError(f"device {device!r} in {where} does not exist on this machine ({have}); use cpu or a device it has")


def default_threads(workers: int) -> int:
    """CPU threads per worker when ``workers`` share this machine's cores."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))
