"""The decode cache: each lazy image split decoded once into a uint8 array on disk.

An entry is keyed by a fingerprint of its files (path, size, modification time), the pixel size
it was decoded at and the decoder's version, so a changed or replaced image makes a new entry
and the old one ages out. Each entry is a raw ``(n, channels, height, width)`` uint8 file plus a
JSON manifest (shape, byte count, sha256). Both are written under temporary names and renamed
into place, so a reader never sees half an entry and two processes building the same entry do
not corrupt it. A reader checks the size on every open and the digest once per process; a
truncated, corrupted or stale entry is rebuilt, and the log says so. Least recently used entries
are removed when the cache would outgrow ``train.decode_cache_max_gb``.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import time
import uuid
from pathlib import Path

import numpy as np
import torch

from tlbench.plugin.errors import UserError
from tlbench.training.decode import DecodedFiles
from tlbench.utils.atomic import write_json_atomic

VERSION = 1
DATA_SUFFIX, MANIFEST_SUFFIX = ".u8", ".json"
BUILD_BATCH = 32


def default_cache_dir() -> Path:
    """``$TLBENCH_CACHE_DIR/decoded``, else ``$XDG_CACHE_HOME/tlbench/decoded`` (``~/.cache``)."""
    root = os.environ.get("TLBENCH_CACHE_DIR")
    if root:
        return Path(root).expanduser() / "decoded"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "tlbench" / "decoded"


def fingerprint(paths, shape) -> str:
    """sha256 of the file list (each path with its size and mtime), the pixel shape and decoder."""
    import PIL

    digest = hashlib.sha256(json.dumps({"version": VERSION, "shape": list(shape), "pillow": PIL.__version__}).encode())
    for path in paths:
        try:
            stat = os.stat(path)
        except OSError as exc:
            raise UserError(f"cannot read image {path!r} ({exc.strerror}); the dataset's file list is out of date") from None
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


class CachedPixels:
    """A finished cache entry: rows read with ``pread`` (no memory map, so a process's memory
    does not grow with the pages it has read)."""

    def __init__(self, path: Path, shape: tuple[int, ...]):
        self.path, self.shape = Path(path), tuple(int(s) for s in shape)
        self.row_bytes = int(np.prod(self.shape[1:]))
        self._fd = None

    def __len__(self) -> int:
        return self.shape[0]

    def __getstate__(self):
        return {"path": self.path, "shape": self.shape, "row_bytes": self.row_bytes, "_fd": None}

    def read(self, rows: np.ndarray) -> np.ndarray:
        """uint8 ``(len(rows), channels, height, width)`` of the given row numbers."""
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        out = np.empty((len(rows), self.row_bytes), dtype=np.uint8)
        for i, row in enumerate(np.asarray(rows, dtype=np.int64)):
            got = os.preadv(self._fd, [out[i]], int(row) * self.row_bytes)
            if got != self.row_bytes:
                raise OSError(f"decode cache entry {self.path} is shorter than its manifest says")
        return out.reshape((len(rows),) + self.shape[1:])

    def __del__(self):
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass


_VERIFIED: set[tuple] = set()  # data files whose digest this process checked, by _stamp


def _stamp(path: Path, stat) -> tuple:
    """What identifies one version of a data file: any write changes its change time."""
    return (str(path), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)


class DecodeCache:
    """The cache folder (``directory``) with its size limit (``max_bytes``; 0 = none)."""

    def __init__(self, directory=None, max_bytes: float = 0, workers: int = 0, log=print):
        self.directory = Path(directory).expanduser() if directory else default_cache_dir()
        self.max_bytes, self.workers, self.log = float(max_bytes), int(workers), log

    def pixels(self, paths, shape, label: str = "images") -> CachedPixels:
        """The entry for ``paths`` decoded at ``shape`` = (channels, height, width): found, or built now."""
        paths = tuple(str(p) for p in paths)
        shape = tuple(int(s) for s in shape)
        key = fingerprint(paths, shape)
        stem = f"{_safe(label)}__{shape[1]}x{shape[2]}__{key[:16]}"
        data, manifest = self.directory / (stem + DATA_SUFFIX), self.directory / (stem + MANIFEST_SUFFIX)
        full = (len(paths),) + shape
        problem = self._problem(data, manifest, key, full)
        if problem is None:
            os.utime(manifest)  # recently used: the last to be evicted
            return CachedPixels(data, full)
        if problem != "missing":
            self.log(f"decode cache entry {data.name} is {problem}; rebuilding it")
        self._build(paths, shape, data, manifest, key, label)
        return CachedPixels(data, full)

    # -- checks ---------------------------------------------------------------------------------
    def _problem(self, data: Path, manifest: Path, key: str, full: tuple) -> str | None:
        try:
            record = json.loads(manifest.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return "missing"
        except (OSError, ValueError):
            return "unreadable (a broken manifest)"
        expected = int(np.prod(full))
        if record.get("version") != VERSION or record.get("fingerprint") != key or tuple(record.get("shape", ())) != full:
            return "stale (its manifest describes other files)"
        try:
            stat = data.stat()
        except FileNotFoundError:
            return "missing its data file"
        if stat.st_size != expected or record.get("bytes") != expected:
            return f"truncated ({stat.st_size:,} of {expected:,} bytes)"
        stamp = _stamp(data, stat)
        if stamp not in _VERIFIED:
            if _sha256(data) != record.get("sha256"):
                return "corrupted (its content digest differs)"
            _VERIFIED.add(stamp)
        return None

    # -- building ---------------------------------------------------------------------------------
    def _build(self, paths, shape, data: Path, manifest: Path, key: str, label: str) -> None:
        need = len(paths) * int(np.prod(shape))
        self.directory.mkdir(parents=True, exist_ok=True)
        self._evict(need, keep=data)
        tmp = data.with_name(f".{data.name}.{uuid.uuid4().hex[:8]}.tmp")
        loader = torch.utils.data.DataLoader(
            DecodedFiles(paths, shape[1], shape[2], shape[0]), batch_size=BUILD_BATCH, shuffle=False,
            num_workers=self.workers, prefetch_factor=4 if self.workers else None,
            multiprocessing_context=_worker_context() if self.workers else None)
        digest, start = hashlib.sha256(), time.perf_counter()
        try:
            with open(tmp, "wb") as out, _progress(f"decoding {label}", len(paths), self.log) as advance:
                for batch in loader:
                    block = batch.numpy().tobytes()
                    digest.update(block)
                    out.write(block)
                    advance(len(batch))
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, data)
            write_json_atomic(manifest, {"version": VERSION, "fingerprint": key, "shape": [len(paths), *shape],
                                         "bytes": need, "sha256": digest.hexdigest(), "label": label,
                                         "files": len(paths)})
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise UserError(f"the decode cache at {self.directory} ran out of disk space building {label} "
                                f"({need / 1e6:,.0f} MB); free space there or set train.decode_cache_dir") from None
            raise
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        seconds = time.perf_counter() - start
        _VERIFIED.add(_stamp(data, data.stat()))
        self.log(f"decoded {len(paths):,} {label} at {shape[1]}x{shape[2]} in {seconds:.1f}s "
                 f"({len(paths) / max(seconds, 1e-9):,.0f} img/s) into {data} ({need / 1e6:,.0f} MB)")

    def _evict(self, need: int, keep: Path) -> None:
        """Remove least recently used entries until ``need`` more bytes fit under the limit."""
        if self.max_bytes <= 0:
            return
        entries = []
        for manifest in self.directory.glob("*" + MANIFEST_SUFFIX):
            data = manifest.with_suffix(DATA_SUFFIX)
            if data != keep and data.exists():
                entries.append((manifest.stat().st_mtime, data, manifest))
        used = sum(d.stat().st_size for _, d, _ in entries)
        for _, data, manifest in sorted(entries):
            if used + need <= self.max_bytes:
                break
            used -= data.stat().st_size
            manifest.unlink(missing_ok=True)
            data.unlink(missing_ok=True)
            self.log(f"decode cache: removed {data.name} (least recently used) to stay under "
                     f"{self.max_bytes / 1e9:.1f} GB")


def _worker_context():
    """How the decode workers start. A plain fork (fast) unless onnxruntime or OpenVINO is loaded
    in this process: their thread pools do not survive a fork (a forked child segfaulted in the
    test suite), so the workers then come from a forkserver that has imported torch and the
    decoder once (each worker forks from it in milliseconds)."""
    import multiprocessing
    import sys

    if not any(name in sys.modules for name in ("onnxruntime", "openvino")):
        return multiprocessing.get_context("fork")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["torch", "torchvision", "tlbench.training.decode"])
    return context


def _safe(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in label)[:60]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


class _progress:
    """A rich progress bar for a cache build; log lines instead when another live display (the
    grid's own progress) is active."""

    def __init__(self, what: str, total: int, log):
        self.what, self.total, self.log, self.progress = what, total, log, None

    def __enter__(self):
        from rich.errors import LiveError
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                            transient=True)
        try:
            progress.start()
        except LiveError:
            self.log(f"{self.what}: {self.total:,} images into the decode cache")
            return lambda n: None
        self.progress = progress
        task = progress.add_task(self.what, total=self.total)
        return lambda n: progress.advance(task, n)

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.stop()
        return False
