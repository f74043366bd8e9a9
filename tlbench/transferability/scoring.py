"""Every estimator on one candidate's features: score, seconds, or why there is none."""

from __future__ import annotations

import math
import time

import numpy as np

from tlbench.plugin.errors import UserError, first_line, unknown
from tlbench.grid.options import resolve_options


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
        built[name] = entry.obj(**resolve_options(f"estimator {name!r}", entry.defaults, given))
    return built


def score_all(estimators: dict, features: np.ndarray, labels: np.ndarray, source_probs) -> dict:
    """``{"scores": {name: float | None}, "seconds": {...}, "errors": {name: why}}``; an estimator
    that raises, returns a non-finite number or needs missing source predictions gets None."""
    labels = np.asarray(labels, dtype=np.int64)
    scores, seconds, errors = {}, {}, {}
    for name, estimator in estimators.items():
        scores[name] = None
        if getattr(estimator, "needs_source_predictions", False) and source_probs is None:
            errors[name] = "not applicable: the candidate has no source classifier"
            continue
        start = time.perf_counter()
        try:
            value = float(estimator.score(features, labels, source_probs))
        except UserError as exc:
            errors[name] = str(exc)
            continue
        except Exception as exc:  # noqa: BLE001 - a plugin's failure is recorded, never fatal
            errors[name] = first_line(exc)
            continue
        finally:
            seconds[name] = round(time.perf_counter() - start, 6)
        if not math.isfinite(value):
            errors[name] = f"returned {value}"
            continue
        scores[name] = value
    return {"scores": scores, "seconds": seconds, "errors": errors}
