"""How well a proxy score (a validator's, an estimator's) ranks options by their true accuracy:
the option it picks, the regret of trusting it, and rank correlations.

One tie rule for every table that reports these (the search selection table, the
estimator-vs-truth table): scores equal to 9 significant digits are equal (float noise is not
a ranking). Among options tied for the top score the pick is the first in the order given
(callers give trials by index, candidates in their stored order). Kendall's tau is tau-b, so
ties in either variable count as ties; it is None when undefined (fewer than two options, or
no variation in one of the two variables).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Hashable, Sequence

SIGNIFICANT_DIGITS = 9


def mean(values) -> float | None:
    """The mean of the finite numbers among ``values`` (None, NaN and inf skipped); None if none."""
    kept = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return sum(kept) / len(kept) if kept else None


def tie_key(score: float) -> float:
    """``score`` at :data:`SIGNIFICANT_DIGITS` significant digits: equal keys are ties."""
    return float(f"{score:.{SIGNIFICANT_DIGITS}g}")


def pick_index(scores: Sequence[float]) -> int | None:
    """The position of the pick among ``scores`` (larger is better): the first one tied for the
    top score; None for no scores."""
    keys = [tie_key(score) for score in scores]
    return keys.index(max(keys)) if keys else None


def _finite(value) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else float(value)


@dataclass(frozen=True)
class ProxyRanking:
    """What trusting a proxy score over some options gives: the ``pick`` (its key), the true
    value it has (``picked``) and the best one (``best``), ``regret`` = best - picked, Kendall's
    tau-b and the hyperbolically weighted tau between truth and score, and whether every option
    scored the same (``all_tied``: the pick is then only the first option)."""

    pick: Hashable
    picked: float
    best: float
    regret: float
    kendall_tau: float | None
    weighted_tau: float | None
    all_tied: bool


def proxy_ranking(options: Sequence[tuple[Hashable, float, float]], best: float | None = None,
                  weighted: bool = False) -> ProxyRanking | None:
    """Rank ``options`` — ``(key, truth, score)`` with larger scores meaning better, in the
    caller's order — by score under the module's tie rule; ``best``: the best truth reachable
    (default: the best among ``options``); ``weighted``: also compute ``scipy.stats.weightedtau``.
    None for no options."""
    if not options:
        return None
    keys = [tie_key(score) for _, _, score in options]
    key, picked, _ = options[pick_index(keys)]
    truth = [t for _, t, _ in options]
    best = max(truth) if best is None else best
    tau = weighted_tau = None
    if len(options) >= 2:
        from scipy.stats import kendalltau, weightedtau

        tau = _finite(kendalltau(keys, truth).statistic)
        weighted_tau = _finite(weightedtau(truth, keys).statistic) if weighted else None
    return ProxyRanking(key, picked, best, best - picked, tau, weighted_tau, len(set(keys)) == 1)
