"""Scores cached per (source model, target, labeled examples, estimator settings) under the
results directory, so a grid computes them once however many cells share a source model."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tlbench.grid.domains import dataset_name
from tlbench.grid.identity import source_model_identity
from tlbench.utils.atomic import write_json_atomic

CACHE_DIR = ".cache/transferability"
VERSION = 3  # bump when the features, the record or an estimator change meaning
# (2: hscore-lw fixed; 3: the source model keyed by tlbench.grid.identity, holdout rule included)


def cache_key(spec, registry, shape, estimator_options: dict) -> dict:
    """Everything the scores of ``spec``'s source model on its target depend on."""
    return {
        "version": VERSION,
        "source_model": source_model_identity(spec, registry, shape),
        "target": spec.target,
        "target_dataset_options": spec.options_of_dataset(dataset_name(spec.target) or ""),
        "shots": spec.shots,
        "estimators": estimator_options,
    }


def cache_path(results_dir, key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Path(results_dir) / CACHE_DIR / f"{key['source_model']['backbone']}__{digest}.json"


def load(path) -> dict | None:
    """The cached record, or None when missing or unreadable."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("scores"), dict) else None


def save(path, record: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, record)
