"""How well the estimators ranked a grid: per target, each estimator's rank correlation with the
fine-tuned target accuracy across candidates (backbone x source model).

Reads result records only (no torch). A group is one target, shots budget, strategy, loss and
model selection; its candidates are the (backbone, source) pairs with ``ok`` results there, each
with its accuracy and score averaged over seeds. Per estimator: Kendall's tau, the weighted tau
of the LogME paper (``scipy.stats.weightedtau``: hyperbolic weights, so swaps among the best
candidates cost more), and the regret of trusting it: the accuracy the best candidate reached
minus that of the candidate the estimator put first (both among the candidates it scored).
Ties follow tlbench.utils.ranking (scores equal to 9 significant digits; the first candidate in
the stored order wins); when every candidate scored the same there is no ranking and no pick.
"""

from __future__ import annotations

from collections import defaultdict

from tlbench.utils.ranking import mean as _mean
from tlbench.utils.ranking import proxy_ranking
from tlbench.settings.train import LAST_STEP

MIN_CANDIDATES = 3  # with two candidates a rank correlation is only ever +1 or -1
GROUP_KEYS = ("target", "shots", "strategy", "loss")


def candidates(results: list[dict]) -> dict[tuple, dict[tuple, dict]]:
    """group key -> (backbone, source) -> {"acc": mean target acc, "scores": {estimator: mean}}."""
    runs = defaultdict(lambda: defaultdict(list))
    for r in results:
        if r.get("status") != "ok" or r.get("target_acc") is None:
            continue
        selection = r.get("model_selection") or LAST_STEP
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
            scored = [(c, m["acc"], m["scores"][name]) for c, m in members.items() if m["scores"].get(name) is not None]
            if len(scored) < MIN_CANDIDATES:
                continue
            ranking = proxy_ranking(scored, weighted=True)
            row = {**dict(zip(GROUP_KEYS + ("model_selection",), group)), "estimator": name,
                   "candidates": len(scored), "of": len(members)}
            if ranking.all_tied:  # every candidate scored the same: no ranking, no pick
                rows.append({**row, "kendall_tau": None, "weighted_tau": None, "picked": "(all tied)", "picked_acc": None,
                             "best_acc": ranking.best, "regret": None})
                continue
            rows.append({**row, "kendall_tau": ranking.kendall_tau, "weighted_tau": ranking.weighted_tau,
                         "picked": f"{ranking.pick[0]}@{ranking.pick[1]}", "picked_acc": ranking.picked,
                         "best_acc": ranking.best, "regret": ranking.regret})
    return rows
