"""Every estimator on one candidate's features: score, seconds, or why there is none."""

from __future__ import annotations

import numpy as np

from tlbench.plugin.errors import unknown
from tlbench.plugin.scoring import NotApplicable, score_each
from tlbench.grid.options import resolve_entry_options


def estimator_names(registry, wanted=None) -> list[str]:
    """``wanted`` (names, checked) or every registered estimator, sorted."""
    names = registry.names("estimators")
    if not wanted:
        return names
    for name in wanted:
        if name not in names:
            raise unknown("estimator", name, names)
    return list(dict.fromkeys(wanted))


def build_estimators(registry, names, options: dict | None = None) -> dict:
    """name -> estimator instance with its ``defaults`` overridden by ``options[name]``."""
    built = {}
    for name in names:
        entry = registry.get("estimators", name)
        given = (options or {}).get(name, {})
        built[name] = entry.obj(**resolve_entry_options(entry, given))
    return built


def score_all(estimators: dict, features: np.ndarray, labels: np.ndarray, source_probs) -> dict:
    """``{"scores": {name: float | None}, "seconds": {...}, "errors": {name: why}}``; an estimator
    that raises, returns a non-finite number or needs missing source predictions gets None."""
    labels = np.asarray(labels, dtype=np.int64)

    def score_one(name):
        estimator = estimators[name]
        if getattr(estimator, "needs_source_predictions", False) and source_probs is None:
            raise NotApplicable("not applicable: the candidate has no source classifier")
        return estimator.score(features, labels, source_probs)

    scored = score_each(estimators, score_one)
    return {"scores": {name: s.value for name, s in scored.items()},
            "seconds": {name: s.seconds for name, s in scored.items() if s.applicable},
            "errors": {name: s.why for name, s in scored.items() if s.why is not None}}
