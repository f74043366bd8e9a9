"""The ``transferability`` record of a grid cell (or a ``tlbench rank`` candidate): every
estimator's score for the cell's source model on the cell's labeled target examples."""

from __future__ import annotations

import time

from tlbench.plugin.errors import first_line
from tlbench.transferability import cache
from tlbench.transferability.features import MAX_EXAMPLES, candidate_model, capped, extract
from tlbench.transferability.scoring import build_estimators, estimator_names, score_all


def labels_from(shots) -> str:
    """Where the labels an estimator sees come from, in words (recorded with the scores)."""
    if shots == "all":
        return f"the target train split (at most {MAX_EXAMPLES} examples, seeded)"
    return f"the cell's {shots} labeled target examples per class (target train split)"


def compute(spec, backbone, shape, source_state, num_source_classes, labeled, estimators, device) -> dict:
    """Features of the labeled examples once, then every estimator on them."""
    split = capped(labeled, spec.seed)
    start = time.perf_counter()
    model = candidate_model(backbone, shape, source_state, num_source_classes, spec.backbone_options)
    features, probs = extract(model, split.x, device)
    feature_seconds = time.perf_counter() - start
    scored = score_all(estimators, features, split.y.cpu().numpy(), probs)
    return {
        "examples": len(split),
        "labels_from": labels_from(spec.shots),
        "feature_dim": int(features.shape[1]),
        "source_predictions": probs is not None,
        "feature_seconds": round(feature_seconds, 6),
        **scored,
    }


def scores_for(runner, spec, backbone, shape, source_state, num_source_classes, labeled, estimators=None,
               refresh: bool = False) -> dict:
    """The record for ``spec``'s source model and labeled examples, from the cache under
    ``runner.results_dir`` unless ``refresh`` (then computed and cached again)."""
    estimators = estimators or build_estimators(runner.registry, estimator_names(runner.registry))
    key = cache.cache_key(spec, runner.registry, shape, {name: e.hparams for name, e in estimators.items()})
    path = cache.cache_path(runner.results_dir, key)
    record = None if refresh else cache.load(path)
    if record is not None:
        return {**record, "cached": True}
    record = compute(spec, backbone, shape, source_state, num_source_classes, labeled, estimators, runner.device)
    cache.save(path, record)
    return {**record, "cached": False}


def cell_transferability(runner, spec, backbone, shape, source_state, num_source_classes, labeled) -> dict:
    """What a grid cell records as ``transferability``; never raises (a failure here is
    recorded as ``{"error": ...}`` and the cell goes on)."""
    if labeled is None or len(labeled) == 0:
        return {"error": "no labeled target examples (shots = 0): nothing to score against"}
    try:
        return scores_for(runner, spec, backbone, shape, source_state, num_source_classes, labeled)
    except Exception as exc:  # noqa: BLE001 - estimators are an extra; the cell must not fail for them
        return {"error": first_line(exc)}
