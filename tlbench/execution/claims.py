"""Exclusive claims on grid cells and source models, shared by every process using a results dir.

A claim is an ``fcntl.flock`` on a small file that also names its holder (pid, host). The kernel
drops the lock when the holder dies, even on ``kill -9``, so a claim can never go stale; a claim
file left behind by a dead holder only tells the next run that its cell was in flight. (On NFS,
Linux maps flock to POSIX byte-range locks, so claims also work across hosts sharing the dir.)
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

CLAIM_FILE = ".claim"


def holder_info() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}


class Claim:
    """A held lock on ``path``; release (or process death) frees it."""

    def __init__(self, path: Path, fd: int):
        self.path = path
        self.fd = fd

    def release(self, remove: bool = True) -> None:
        """Drop the lock; ``remove`` deletes the claim file first (the work is done)."""
        if self.fd < 0:
            return
        if remove:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
        os.close(self.fd)
        self.fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def _lock(path: Path, blocking: bool) -> Claim | None:
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        # The previous holder may have unlinked the file between our open and our lock:
        # then we locked an orphan inode and must retry on the file now at ``path``.
        try:
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, json.dumps(holder_info()).encode())
                os.fsync(fd)
                return Claim(path, fd)
        except BaseException:  # Ctrl-C right here must not leave the lock held by a lost fd
            os.close(fd)
            raise
        os.close(fd)


def try_claim(path) -> Claim | None:
    """Take the claim on ``path`` now, or None when another live process holds it."""
    return _lock(Path(path), blocking=False)


def wait_claim(path) -> Claim:
    """Take the claim on ``path``, waiting for its current holder to finish."""
    return _lock(Path(path), blocking=True)


def holder(path) -> dict | None:
    """Who holds the claim on ``path`` (pid, host), or None when nobody holds it."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                return json.loads(path.read_text() or "{}") or {"pid": None, "host": None}
            except (OSError, ValueError):
                return {"pid": None, "host": None}
        return None
    finally:
        os.close(fd)


def left_behind(path) -> bool:
    """True when a claim file exists but nobody holds it: its holder died mid-task."""
    return Path(path).exists() and holder(path) is None
