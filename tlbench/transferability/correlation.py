"""How well the estimators ranked a grid: per target, each estimator's rank correlation with the
fine-tuned target accuracy across candidates (backbone x source model).

Reads result records only (no torch). A group is one target, shots budget, strategy, loss and
model selection; its candidates are the (backbone, source) pairs with ``ok`` results there, each
with its accuracy and score averaged over seeds. Per estimator: Kendall's tau, the weighted tau
of the LogME paper (``scipy.stats.weightedtau``: hyperbolic weights, so swaps among the best
candidates cost more), and the regret of trusting it: the accuracy the best candidate reached
minus that of the candidate the estimator put first (both among the candidates it scored).
"""

from __future__ import annotations

import math
from collections import defaultdict

MIN_CANDIDATES = 3  # with two candidates a rank correlation is only ever +1 or -1
GROUP_KEYS = ("target", "shots", "strategy", "loss")


def _mean(values):
    values = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return sum(values) / len(values) if values else None


def kendall(truth: list[float], scores: list[float]) -> tuple[float | None, float | None]:
    """(Kendall's tau-b, weighted tau) of ``scores`` against ``truth``; None where undefined."""
    from scipy.stats import kendalltau, weightedtau

    tau = kendalltau(truth, scores).statistic
    weighted = weightedtau(truth, scores).statistic
    clean = lambda v: None if v is None or not math.isfinite(float(v)) else float(v)  # noqa: E731
    return clean(tau), clean(weighted)


def candidates(results: list[dict]) -> dict[tuple, dict[tuple, dict]]:
    """group key -> (backbone, source) -> {"acc": mean target acc, "scores": {estimator: mean}}."""
    runs = defaultdict(lambda: defaultdict(list))
    for r in results:
        if r.get("status") != "ok" or r.get("target_acc") is None:
            continue
        selection = r.get("model_selection") or "last"
        runs[tuple(r.get(k) for k in GROUP_KEYS) + (selection,)][(r["backbone"], r["source"])].append(r)
    out = {}
    for group, members in runs.items():
        out[group] = {}
        for candidate, records in members.items():
            names = {n for rec in records for n in ((rec.get("transferability") or {}).get("scores") or {})}
            out[group][candidate] = {
                "acc": _mean(rec["target_acc"] for rec in records),
                "scores": {n: _mean(((rec.get("transferability") or {}).get("scores") or {}).get(n) for rec in records)
                           for n in sorted(names)},
            }
    return out


def correlations(results: list[dict]) -> list[dict]:
    """One row per group and estimator with at least ``MIN_CANDIDATES`` scored candidates."""
    rows = []
    for group, members in sorted(candidates(results).items(), key=lambda item: tuple(map(str, item[0]))):
        names = sorted({n for m in members.values() for n in m["scores"]})
        for name in names:
            # 9 significant digits: scores that differ only by float noise are ties, not a ranking
            scored = [(c, m["acc"], float(f"{m['scores'][name]:.9g}")) for c, m in members.items()
                      if m["scores"].get(name) is not None]
            if len(scored) < MIN_CANDIDATES:
                continue
            best_acc = max(s[1] for s in scored)
            if len({s[2] for s in scored}) == 1:  # every candidate scored the same: no ranking, no pick
                rows.append({**dict(zip(GROUP_KEYS + ("model_selection",), group)), "estimator": name,
                             "candidates": len(scored), "of": len(members), "kendall_tau": None, "weighted_tau": None,
                             "picked": "(all tied)", "picked_acc": None, "best_acc": best_acc, "regret": None})
                continue
            tau, weighted = kendall([s[1] for s in scored], [s[2] for s in scored])
            pick = max(scored, key=lambda s: s[2])
            rows.append({
                **dict(zip(GROUP_KEYS + ("model_selection",), group)),
                "estimator": name, "candidates": len(scored), "of": len(members),
                "kendall_tau": tau, "weighted_tau": weighted,
                "picked": f"{pick[0][0]}@{pick[0][1]}", "picked_acc": pick[1], "best_acc": best_acc,
                "regret": best_acc - pick[1],
            })
    return rows
