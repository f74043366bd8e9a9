"""A failure told as what it is when the disk is full.

A full disk does not always surface as ``OSError(ENOSPC)``: a library that writes a file,
ignores the short write and reads it back fails with a parse error instead (onnx reports a
protobuf ``DecodeError`` for a truncated model). So a failure counts as "no space left on
device" when ``ENOSPC``/``EDQUOT`` appears anywhere in its exception chain, or when the
filesystem it was writing to has less than :data:`LOW_SPACE_BYTES` free.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

LOW_SPACE_BYTES = 16 * 1024 * 1024
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def free_bytes(directory) -> int | None:
    """Bytes free to this user on the filesystem holding ``directory`` (or its nearest existing
    parent), or None when it cannot be told."""
    path = Path(directory)
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def out_of_space(exc: BaseException, directory) -> bool:
    """True when ``exc`` (raised while writing under ``directory``) comes from a full disk."""
    if any(isinstance(e, OSError) and e.errno in NO_SPACE_ERRNOS for e in _chain(exc)):
        return True
    free = free_bytes(directory)
    return free is not None and free < LOW_SPACE_BYTES


def describe_failure(exc: BaseException, directory) -> str:
    """A result's ``error``: ``Type: message``, or, when the disk is full, a text that starts
    with "no space left on device" and keeps the original error after it."""
    text = f"{type(exc).__name__}: {exc}"
    if not out_of_space(exc, directory):
        return text
    free = free_bytes(directory)
    left = "" if free is None else f", {free / 1e6:.1f} MB free"
    return f"no space left on device (writing under {directory}{left}); free some space and rerun. Error was {text}"
