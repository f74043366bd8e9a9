"""Reading a named benchmark's tree and checking it before any training.

Every refusal is one line naming the expected layout and what is missing or wrong: the domain
folder, a class folder, a list file, a list line. A domain with fewer images than the published
release is a one-line warning (a partial download), not an error.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tlbench.plugin.errors import UserError, closest_first

from tlbench_plugins.datasets.benchmarks.catalogue import FOLDERS, Benchmark, expected_count

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
SHOWN = 3  # names listed in a one-line error before "..."


def _names(items) -> str:
    items = list(items)
    shown = ", ".join(repr(str(i)) for i in items[:SHOWN])
    return shown + (f" and {len(items) - SHOWN} more" if len(items) > SHOWN else "")


def domain_dir(benchmark: Benchmark, root: Path, domain: str) -> Path:
    """The folder of ``domain`` (a known alias accepted, e.g. Office-Home's 'Real World'); a
    missing one is a one-line UserError."""
    folder = root / domain
    if folder.is_dir():
        return folder
    for alias, name in benchmark.aliases.items():
        if name == domain and (root / alias).is_dir():
            return root / alias
    present = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []
    found = f"; found {_names(present)}" if present else "; the folder is empty"
    raise UserError(f"{benchmark.name}: domain folder {domain!r} is missing under {str(root)!r}{found}; "
                    f"expected {benchmark.layout_text}")


def _class_folders(benchmark: Benchmark, root: Path, domain: str) -> Path:
    """The folder holding ``domain``'s class folders, checked: every class there, nothing else."""
    folder = domain_dir(benchmark, root, domain)
    if benchmark.class_subdir:
        folder = folder / benchmark.class_subdir
        if not folder.is_dir():
            raise UserError(f"{benchmark.name}: {str(folder)!r} is missing; expected {benchmark.layout_text}")
    present = {p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")}
    strange = sorted(present - set(benchmark.classes))
    if strange:
        hint = closest_first(strange[0], benchmark.classes)[0]
        raise UserError(f"{benchmark.name}: class folder {strange[0]!r} in {str(folder)!r} is not one of its "
                        f"{len(benchmark.classes)} classes (closest: {hint!r}); expected {benchmark.layout_text}")
    missing = [c for c in benchmark.classes if c not in present]
    if missing:
        raise UserError(f"{benchmark.name}: {domain} lacks class folder(s) {_names(missing)} under {str(folder)!r}; "
                        f"expected all {len(benchmark.classes)} in {benchmark.layout_text}")
    return folder


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def list_path(benchmark: Benchmark, root: Path, domain: str, split: str) -> Path:
    """The list file of ``split``; a missing one is a one-line UserError."""
    path = root / benchmark.list_files[split].format(domain=domain)
    if not path.is_file():
        raise UserError(f"{benchmark.name}: list file {str(path)!r} is missing; expected {benchmark.layout_text}")
    return path


def _read_list(benchmark: Benchmark, root: Path, domain: str, split: str) -> list[tuple[Path, int]]:
    """A list file's ``(path, label)`` items; a missing file or a malformed line is one line."""
    path = list_path(benchmark, root, domain, split)
    base = domain_dir(benchmark, root, domain) if benchmark.paths_from_domain else root
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        where = f"{benchmark.name}: {path.name} line {number}"
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise UserError(f"{where} is {line.strip()[:60]!r}; expected 'RELATIVE/PATH LABEL'")
        label = int(parts[1])
        if not 0 <= label < len(benchmark.classes):
            raise UserError(f"{where}: label {label} is out of range; use 0..{len(benchmark.classes) - 1}")
        folder = Path(parts[0]).parent.name
        if folder in benchmark.classes and benchmark.classes.index(folder) != label:
            raise UserError(f"{where}: {parts[0]!r} is labelled {label} ({benchmark.classes[label]!r}), but its "
                            f"folder is class {benchmark.classes.index(folder)}; the list and the class order disagree")
        items.append((base / parts[0], label))
    if not items:
        raise UserError(f"{benchmark.name}: list file {str(path)!r} names no images")
    missing = [p for p, _ in (items[0], items[-1]) if not p.is_file()]
    if missing:
        raise UserError(f"{benchmark.name}: {str(missing[0])!r}, named in {path.name}, is missing; "
                        f"expected {benchmark.layout_text}")
    return items


def check(benchmark: Benchmark, root: Path, domain: str) -> None:
    """One-line UserError unless ``domain`` is laid out as ``benchmark`` expects (checked before
    training: folders and list files; each image is read later)."""
    if benchmark.layout == FOLDERS:
        _class_folders(benchmark, root, domain)
    else:
        domain_dir(benchmark, root, domain)
        for split in benchmark.list_files:
            list_path(benchmark, root, domain, split)


def read(benchmark: Benchmark, root: Path, domain: str) -> dict[str, list[tuple[Path, int]]]:
    """``{split: [(image path, label), ...]}``: ``"all"`` for folder layouts (classes in the
    published order, files sorted), or one entry per list file."""
    if benchmark.layout == FOLDERS:
        folder = _class_folders(benchmark, root, domain)
        items = [(path, label) for label, name in enumerate(benchmark.classes) for path in _images(folder / name)]
        if not items:
            raise UserError(f"{benchmark.name}: {domain} has no image files ({', '.join(IMAGE_SUFFIXES)}) in its "
                            f"class folders; expected {benchmark.layout_text}")
        found = {"all": items}
    else:
        found = {split: _read_list(benchmark, root, domain, split) for split in benchmark.list_files}
    warn_if_short(benchmark, domain, sum(len(v) for v in found.values()))
    return found


def short_count(benchmark: Benchmark, domain: str, count: int) -> str | None:
    """The warning for a domain with fewer images than the published release (None otherwise)."""
    expected = expected_count(benchmark, domain)
    if count >= expected:
        return None
    return (f"{benchmark.name} domain {domain!r} has {count:,} images; the published release has {expected:,} "
            f"(a partial download? results will not compare with published tables)")


def warn_if_short(benchmark: Benchmark, domain: str, count: int) -> None:
    message = short_count(benchmark, domain, count)
    if message is not None:
        print(f"warning: {message}", file=sys.stderr)
