"""Result files: written atomically (temp file, fsync, rename), validated on read."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

from tlbench.plugin.errors import first_line
from tlbench.utils import atomic
from tlbench.utils.atomic import atomic_write_bytes, write_json_atomic  # noqa: F401 (re-exported)
from tlbench.utils.disk import describe_failure  # noqa: F401 (re-exported)

RESULT_FILE = "result.json"
# Version of the result.json layout. 1: no `schema_version` field (before typed settings);
# 2: adds it. Readers accept every version up to this one; a newer file is refused, not guessed at.
SCHEMA_VERSION = 2
STATUSES = ("ok", "failed", "interrupted")
REQUIRED = {
    "run_id": str,
    "backbone": str,
    "source": str,
    "target": str,
    "strategy": str,
    "loss": str,
    "seed": int,
    "status": str,
}
NUMERIC = (
    "target_acc",
    "source_acc",
    "train_seconds",
    "train_samples_per_s",
    "torch_latency_ms",
    "ort_latency_ms",
    "onnx_max_abs_diff",
    "onnx_top1_agreement",
)


def validate_result(obj) -> str | None:
    """Why ``obj`` is not a valid result record, or None when it is."""
    if not isinstance(obj, dict):
        return "not a JSON object"
    for key, kind in REQUIRED.items():
        if not isinstance(obj.get(key), kind) or (kind is int and isinstance(obj.get(key), bool)):
            return f"field {key!r} missing or not {kind.__name__}"
    version = obj.get("schema_version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= SCHEMA_VERSION:
        return f"schema_version {version!r} is not one this tlbench reads (1..{SCHEMA_VERSION}); upgrade tlbench"
    if obj["status"] not in STATUSES:
        return f"status {obj['status']!r} is not one of {STATUSES}"
    for key in NUMERIC:
        value = obj.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            return f"field {key!r} is not a number"
    if obj["status"] == "ok" and obj.get("target_acc") is None:
        return "an ok result without target_acc"
    return None


def read_result_or_reason(path) -> tuple[dict | None, str | None]:
    """(the result stored at ``path``, None) or (None, why it is unreadable)."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        return None, f"cannot read it ({exc.strerror or type(exc).__name__})"
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        return None, f"not valid JSON ({first_line(exc, 80, typed=False)})"
    reason = validate_result(obj)
    return (obj, None) if reason is None else (None, reason)


def read_result(path) -> dict | None:
    """The result stored at ``path``, or None if it is missing, truncated or hand-broken."""
    return read_result_or_reason(path)[0]


def scan_results(results_dir) -> tuple[list[dict], list[tuple[Path, str]]]:
    """(every valid result under ``results_dir``, [(path, why) of every unreadable result file])."""
    found, skipped = [], []
    for path in sorted(Path(results_dir).glob(f"*/{RESULT_FILE}")):
        result, reason = read_result_or_reason(path)
        if result is None:
            skipped.append((path, reason))
        else:
            found.append(result)
    return found, skipped


def load_results(results_dir) -> list[dict]:
    """Every valid result under ``results_dir`` (one directory per run); see ``scan_results``
    for the files skipped as unreadable."""
    return scan_results(results_dir)[0]


def finished_run_ids(results_dir) -> set[str]:
    """Run ids with a valid ``ok`` result whose files are intact: a rerun skips these."""
    done = set()
    for path in sorted(Path(results_dir).glob(f"*/{RESULT_FILE}")):
        result = read_result(path)
        if result is not None and result["status"] == "ok" and artifacts_intact(path.parent, result):
            done.add(result["run_id"])
    return done


ONNX_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
MODEL_FILE = "model.pt"  # the trained transfer model's state dict
ARTIFACTS = (ONNX_FILE, INT8_FILE, MODEL_FILE)  # the model files a run writes


def sha256_file(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def artifact_digests(run_dir) -> dict:
    """sha256 of every model file a run wrote, recorded in its result to verify on resume."""
    return {name: sha256_file(Path(run_dir) / name) for name in ARTIFACTS if (Path(run_dir) / name).is_file()}


def artifacts_intact(run_dir, result: dict) -> bool:
    """Whether the model files named in ``result["artifacts"]`` are as written: each with its
    recorded sha256 — or none of them there at all, a results-only copy (how results are
    committed and shared: the numbers stand without the weights). A file cut short, altered, or
    missing beside others that remain means damage: the cell runs again."""
    recorded = result.get("artifacts")
    if recorded is None:
        return True  # results written before digests were recorded
    if not isinstance(recorded, dict) or not all(isinstance(d, str) for d in recorded.values()):
        return False
    present = {name: Path(run_dir) / str(name) for name in recorded if (Path(run_dir) / str(name)).exists()}
    if not present:
        return True
    return len(present) == len(recorded) and all(
        path.is_file() and sha256_file(path) == recorded[name] for name, path in present.items())


# What ``tempfile`` names a file or folder it makes (``mkstemp``, ``mkdtemp``,
# ``TemporaryDirectory``): "tmp" and 8 random characters. The INT8 quantizer stages its files in
# such a folder inside the run directory; a kill leaves it behind.
TEMPFILE_NAME = re.compile(r"^tmp[a-z0-9_]{8}$")


def remove_stale_temps(directory, name: str = "*") -> int:
    """Delete what a process killed mid-write left in ``directory``: the ``atomic_write_bytes``
    temp files for ``name`` and, for a whole run directory (``name="*"``), every ``tempfile``
    file or folder too (the quantizer's ``tmpXXXXXXXX/``). Call only while holding the claim on
    what lives there. Returns how many entries were removed."""
    removed = atomic.remove_stale_temps(directory, name)
    if name != "*" or not Path(directory).is_dir():
        return removed
    for entry in Path(directory).iterdir():
        if not TEMPFILE_NAME.match(entry.name):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed += not entry.exists()
    return removed

