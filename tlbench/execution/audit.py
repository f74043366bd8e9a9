"""What a result needs to be audited later: the code that produced it, the data it read, the
locked dependencies, the hardware and whether deterministic algorithms were on (``audit`` in
result.json; the leaderboard warns when compared cells differ in any of them).

- ``code``: the tlbench version and, when it runs from a git checkout, the commit and whether the
  tree had uncommitted changes (``dirty``).
- ``data``: a fingerprint per split read (``source_train``, ``source_test``, ``target_train``,
  ``target_test``): SHA-256 of the raw arrays and labels for in-memory splits; of each file's
  name, size and modification time (relative to the split's common folder, so a moved copy keeps
  its fingerprint) for image files; of the array bytes for a pixel array.
- ``constraints_sha256``: the digest of the checkout's ``constraints.txt`` (None when installed
  from a wheel).
- ``hardware``: CPU model and cores, GPU name, CUDA and cuDNN versions.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from functools import cache
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]  # the checkout holding tlbench/, when run from one


@cache
def code_revision() -> dict:
    """The tlbench version, and the git commit and dirty flag when running from a checkout."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        out = {"version": version("tlbench")}
    except PackageNotFoundError:
        out = {"version": None}
    if (ROOT / ".git").exists():
        try:
            commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                                    timeout=10).stdout.strip()
            status = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, timeout=10).stdout
            out.update(commit=commit or None, dirty=bool(status.strip()))
        except (OSError, subprocess.SubprocessError):
            out.update(commit=None, dirty=None)
    return out


@cache
def constraints_digest() -> str | None:
    path = ROOT / "constraints.txt"
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@cache
def hardware() -> dict:
    cuda = torch.cuda.is_available()
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "cuda": torch.version.cuda if cuda else None,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
    }


def split_fingerprint(split) -> str:
    """SHA-256 (hex, 16 characters) of a raw split as a dataset plugin handed it over."""
    from tlbench.plugin.sources import ImageFiles, PixelArray
    from tlbench.training.streaming import LazyRows

    digest = hashlib.sha256()
    x = split.x.source if isinstance(split.x, LazyRows) else split.x
    rows = split.x.rows.numpy() if isinstance(split.x, LazyRows) else None
    if isinstance(x, ImageFiles):
        paths = [Path(p) for p in x.paths]
        base = Path(os.path.commonpath([str(p.parent) for p in paths])) if paths else Path()
        for index in (range(len(paths)) if rows is None else rows):
            path = paths[int(index)]
            stat = path.stat()
            digest.update(f"{path.relative_to(base).as_posix()}\t{stat.st_size}\t{int(stat.st_mtime)}\n".encode())
    elif isinstance(x, PixelArray):
        array = np.asarray(x.array)
        picked = array if rows is None else array[rows]
        digest.update(f"{picked.shape}{picked.dtype}".encode())
        for chunk in range(0, len(picked), 1024):
            digest.update(np.ascontiguousarray(picked[chunk:chunk + 1024]).tobytes())
    else:
        tensor = torch.as_tensor(x).detach().cpu().contiguous()
        digest.update(f"{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(tensor.numpy().tobytes())
    labels = torch.as_tensor(split.y).detach().cpu().contiguous()
    digest.update(labels.numpy().tobytes())
    return digest.hexdigest()[:16]


def audit_record(fingerprints: dict[str, str | None]) -> dict:
    """The ``audit`` field of a result."""
    return {
        "code": code_revision(),
        "data": fingerprints,
        "constraints_sha256": constraints_digest(),
        "hardware": hardware(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
    }
