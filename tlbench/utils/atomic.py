"""Atomic file writes: readers see the old file or the whole new one, never a part."""

from __future__ import annotations

import json
import math
import os
import stat
import tempfile
from pathlib import Path


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux: /proc)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (a brief window other threads could see)
    os.umask(mask)
    return mask


def _mode_for(path: Path) -> int:
    """The permission bits a plain ``open(path, "w")`` would leave: an existing file keeps its
    mode, a new one gets 0666 minus the umask."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return 0o666 & ~current_umask()


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _mode_for(path))  # mkstemp makes 0600; a normal file is 0666 & ~umask
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def remove_stale_temps(directory, name: str = "*") -> int:
    """Delete temp files that ``atomic_write_bytes`` left in ``directory`` for ``name`` when its
    process was killed mid-write. Call only while holding the claim on what lives there."""
    removed = 0
    for stale in Path(directory).glob(f".{name}.*.tmp"):
        stale.unlink(missing_ok=True)
        removed += 1
    return removed


def _clean(value):
    """JSON-safe copy: NaN/inf become None (strict JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_json_atomic(path, obj) -> None:
    """Atomically write ``obj`` as strict, indented JSON."""
    atomic_write_bytes(path, (json.dumps(_clean(obj), indent=2, sort_keys=True, allow_nan=False) + "\n").encode())
