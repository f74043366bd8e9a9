"""Output paths checked before any work: one line naming what is wrong, never a traceback later.
No output goes inside a run directory or a results directory's cache (``refuse_run_files``).

Writability is probed by creating and removing a temp file (permission bits say nothing when
running as root, on read-only mounts or in /proc).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tlbench.plugin.errors import UserError


def _exists(path: Path) -> bool:
    try:
        return path.exists() or path.is_symlink()
    except OSError:  # e.g. EACCES on a parent: treat as existing, the probe below reports it
        return True


def _nearest_existing(path: Path) -> Path:
    current = path
    while not _exists(current):
        parent = current.parent
        if parent == current:
            break
        current = parent
    return current


def _probe_directory(directory: Path, flag: str, shown: str) -> None:
    """UserError unless a file can be created (and removed) in ``directory``."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tlbench-write-test-", dir=directory)
    except (OSError, ValueError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UserError(f"{flag} {shown!r} is not writable ({str(directory)!r}: {why}); give a path you can write") from None
    os.close(fd)
    try:
        os.unlink(tmp)
    except OSError:
        pass


def _check_parents(path: Path, flag: str, shown: str) -> Path:
    """The nearest existing ancestor of ``path`` (or ``path``); UserError when it is not a folder."""
    if "\0" in str(path):
        raise UserError(f"{flag} {shown!r} contains a NUL character; give a plain path")
    anchor = _nearest_existing(path)
    if anchor != path and not anchor.is_dir():
        raise UserError(f"{flag} {shown!r}: {str(anchor)!r} is a file, not a directory; give a path under a directory")
    return anchor


def check_output_dir(path, flag: str, guard: bool = True) -> Path:
    """A directory that will be created if needed and written into; returns it as a Path.
    ``guard``: refuse one inside a run directory or a results directory's cache (see
    ``refuse_run_files``)."""
    shown = str(path)
    if not shown:
        raise UserError(f"{flag} is empty; give a directory path")
    path = Path(path).expanduser()
    anchor = _check_parents(path, flag, shown)
    if anchor == path and not path.is_dir():
        raise UserError(f"{flag} {shown!r} is a file, not a directory; give a directory (it is created if missing)")
    if guard:
        refuse_run_files(path, flag, shown)
    _probe_directory(anchor, flag, shown)
    return path


def check_output_file(path, flag: str, hint: str = "a file name") -> Path:
    """A file that will be written (replaced if present); returns it as a Path."""
    shown = str(path)
    if not shown:
        raise UserError(f"{flag} is empty; give {hint}")
    path = Path(path).expanduser()
    if shown.endswith(("/", os.sep)) or (_exists(path) and path.is_dir()):
        raise UserError(f"{flag} {shown!r} is a directory; give {hint}")
    anchor = _check_parents(path, flag, shown)
    refuse_run_files(path, flag, shown)
    _probe_directory(path.parent if anchor == path else anchor, flag, shown)
    if anchor == path:
        try:
            with open(path, "ab"):
                pass
        except OSError as exc:
            raise UserError(f"{flag} {shown!r} is not writable ({exc.strerror or type(exc).__name__}); give a path you can write") from None
    return path


# What a results directory holds besides its run directories: the source-model and estimator
# caches (tlbench.execution.source_cache.CACHE_DIR, tlbench.transferability.cache.CACHE_DIR).
CACHE_DIRS = {".cache/sources": "source-model cache", ".cache/transferability": "estimator cache"}


def check_cache_dirs(results_dir, flag: str) -> None:
    """The caches under ``results_dir`` can be created and written (none under a regular file)."""
    for cache, what in CACHE_DIRS.items():
        check_output_dir(Path(results_dir).expanduser() / cache, f"{flag}'s {what}", guard=False)


def is_run_dir(directory: Path) -> bool:
    """Does ``directory`` hold a run: a valid result.json, or a result.json beside model files?"""
    from tlbench.execution.results import ARTIFACTS, RESULT_FILE, read_result

    try:
        if not (directory / RESULT_FILE).is_file():
            return False
        return any((directory / name).is_file() for name in ARTIFACTS) or read_result(directory / RESULT_FILE) is not None
    except OSError:
        return False


def _is_cache(directory: Path, parent: str, name: str) -> bool:
    """``directory`` is a results directory's ``.cache`` (holding ``name``) or ``.cache/name``."""
    if directory.name == name and directory.parent.name == parent:
        return True
    return directory.name == parent and _exists(directory / name)


def refuse_run_files(path, flag: str, shown: str | None = None) -> None:
    """UserError when writing ``path`` (a file, or a directory to write into) would put output
    inside a run directory (its result.json, models, predictions) or a results directory's cache:
    no command writes over what a run produced. Symbolic links are followed."""
    shown = str(path) if shown is None else shown
    try:
        real = Path(os.path.realpath(Path(path).expanduser()))
    except (OSError, ValueError):
        return
    for directory in (real, *real.parents):
        if is_run_dir(directory):
            raise UserError(f"{flag} {shown!r} is inside run directory {str(directory)!r}; tlbench never writes over a "
                            "run's files (result.json, models, predictions): give a path outside it")
        if any(_is_cache(directory, *cache.split("/")) for cache in CACHE_DIRS):
            raise UserError(f"{flag} {shown!r} is inside {str(directory)!r}, a results directory's cache; give a path "
                            "outside it")


PLOT_RULE = ("FILE.png writes the accuracy-vs-shots plot there; an existing directory or a path ending in "
             "'/' receives every plot (accuracy_vs_shots.png, accuracy_vs_latency.png, best_gain_heatmap.png)")


def check_plot_target(target: str, flag: str = "--plot") -> str:
    """``"file"`` for a ``.png`` path, ``"dir"`` for an existing directory or a path ending in
    ``/``; anything else (``out.txt``) is a UserError rather than a folder named ``out.txt``."""
    if target.lower().endswith(".png") and not target.endswith(("/", os.sep)):
        check_output_file(target, flag, "FILE.png")
        return "file"
    path = Path(target).expanduser()
    if target.endswith(("/", os.sep)) or (_exists(path) and path.is_dir()):
        check_output_dir(target, flag)
        return "dir"
    raise UserError(f"{flag} {target!r} is neither a .png file nor a directory: {PLOT_RULE}")
