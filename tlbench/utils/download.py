"""Downloading and unpacking a dataset archive: resumable, checksummed, extracted atomically.

* :func:`fetch` streams a URL into ``FILE.part`` with rich progress and renames it to ``FILE``
  once complete; a ``.part`` left by an interrupted transfer is resumed with an HTTP Range
  request (a server that ignores Range restarts it). A transfer that ends short of its
  Content-Length is an :class:`DownloadError` that says to rerun (which resumes).
* A known SHA-256 is checked before anything is unpacked; a mismatch deletes the file and is
  one line with both digests. An archive without a recorded digest is trusted on first use:
  once it unpacked cleanly its digest is written to ``DATA_ROOT/.tlbench-downloads.json`` and
  checked on every later download into that root.
* :func:`extract` unpacks zip and tar archives into a temporary folder beside the destination
  and moves each top-level entry into place only when the whole archive unpacked, so a
  truncated archive leaves nothing half-extracted (and is deleted, so a rerun fetches it again). Members that would land outside the
  destination (absolute paths, ``..``, links) are refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tlbench.plugin.errors import UserError

CHUNK = 1 << 20
TIMEOUT_S = 30.0
MANIFEST = ".tlbench-downloads.json"


class DownloadError(UserError):
    """A download or unpacking that failed; the message is one line."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _progress(description: str, total: int | None, done: int):
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                        TimeRemainingColumn(), transient=True)
    task = progress.add_task(description, total=total, completed=done)
    return progress, task


def fetch(url: str, destination: Path, log=print) -> Path:
    """``url`` downloaded to ``destination`` (resumed from ``destination.part`` when one exists)."""
    destination = Path(destination)
    if destination.is_file():
        return destination
    partial = destination.with_name(destination.name + ".part")
    destination.parent.mkdir(parents=True, exist_ok=True)
    have = partial.stat().st_size if partial.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)  # noqa: S310 - http(s) URLs from the catalogue or the user
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the partial file is already whole
            partial.replace(destination)
            return destination
        raise DownloadError(f"downloading {url} failed: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"cannot download {url}: {reason}; check the address and your network") from None
    with response:
        resumed = have and response.status == 206
        if not resumed:
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        if resumed:
            log(f"resuming {destination.name} at {have:,} bytes")
        progress, task = _progress(f"downloading {destination.name}", total, have)
        received = have
        with progress, open(partial, "ab" if resumed else "wb") as out:
            while True:
                try:
                    block = response.read(CHUNK)
                except (OSError, ValueError) as exc:  # a reset connection or an http.client.IncompleteRead
                    block, error = b"", exc
                else:
                    error = None
                if not block:
                    break
                out.write(block)
                received += len(block)
                progress.update(task, completed=received)
    if (total is not None and received < total) or error is not None:
        raise DownloadError(f"the transfer of {url} stopped at {received:,} of {total or '?'} bytes; rerun with "
                            f"--download to resume from {partial.name}")
    partial.replace(destination)
    return destination


def _manifest(root: Path) -> dict:
    try:
        return json.loads((Path(root) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def verify(path: Path, expected: str | None, root: Path, key: str) -> str:
    """``path``'s SHA-256 checked against ``expected`` or, when none is recorded, against the digest
    first seen for ``key`` in ``root``'s manifest. A mismatch deletes the file. Returns the digest
    (for :func:`remember` once the file proved good)."""
    actual = sha256_of(path)
    wanted = expected or _manifest(root).get(key)
    if wanted is not None and actual != wanted:
        path.unlink(missing_ok=True)
        source = "recorded" if expected else f"first seen in {Path(root) / MANIFEST}"
        raise DownloadError(f"{path.name} has SHA-256 {actual[:16]}..., not the {source} {wanted[:16]}...; the file was "
                            "deleted (a corrupted or changed download); rerun with --download")
    return actual


def remember(root: Path, key: str, digest: str) -> None:
    """Record ``digest`` as the first-seen SHA-256 of ``key`` (after the file unpacked cleanly)."""
    manifest = _manifest(root)
    if key not in manifest:
        manifest[key] = digest
        path = Path(root) / MANIFEST
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")


def _safe_members(names: list[str], archive: Path) -> None:
    for name in names:
        parts = Path(name).parts
        if Path(name).is_absolute() or ".." in parts:
            raise DownloadError(f"{archive.name} holds {name!r}, which would land outside the data folder; refused")


def extract(archive: Path, destination: Path) -> list[Path]:
    """Unpack ``archive`` (zip, tar, tar.gz) into ``destination`` atomically per top-level entry:
    everything is unpacked beside it first; a truncated or corrupt archive leaves nothing behind."""
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tlbench-extract-", dir=destination))
    try:
        try:
            if zipfile.is_zipfile(archive):
                with zipfile.ZipFile(archive) as handle:
                    _safe_members(handle.namelist(), archive)
                    handle.extractall(staging)
            else:
                with tarfile.open(archive) as handle:
                    members = handle.getmembers()
                    _safe_members([m.name for m in members], archive)
                    if any(m.issym() or m.islnk() for m in members):
                        raise DownloadError(f"{archive.name} holds links; refused")
                    handle.extractall(staging, filter="data")
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
            Path(archive).unlink(missing_ok=True)
            raise DownloadError(f"{archive.name} cannot be unpacked ({type(exc).__name__}: {str(exc)[:80]}); it is "
                                "truncated or corrupt and was deleted: rerun with --download") from None
        placed = []
        for entry in sorted(staging.iterdir()):
            target = destination / entry.name
            if target.exists():
                if target.is_dir() and entry.is_dir():
                    _merge(entry, target)
                    placed.append(target)
                    continue
                target.unlink()
            os.replace(entry, target)
            placed.append(target)
        return placed
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _merge(source: Path, target: Path) -> None:
    """Move ``source``'s entries into the existing folder ``target`` (a domain whose list file came first)."""
    for entry in source.iterdir():
        into = target / entry.name
        if into.is_dir() and entry.is_dir():
            _merge(entry, into)
        else:
            os.replace(entry, into)
