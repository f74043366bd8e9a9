"""Robust aggregates: the interquartile mean, the probability of improvement and their stratified
bootstrap intervals match hand computations; the leaderboard shows them with a seed warning."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tlbench.report.formats import export
from tlbench.report.robust import iqm, probability_of_improvement, robust_summary, stratified_bootstrap


def test_iqm_cuts_a_quarter_from_each_end():
    assert iqm(np.arange(1, 9)) == pytest.approx((3 + 4 + 5 + 6) / 4)  # 8 scores: 2 cut from each end
    assert iqm(np.array([[10.0, 0.0], [1.0, 2.0]])) == pytest.approx((1 + 2) / 2)


def test_probability_of_improvement_by_hand():
    x = np.array([[1.0, 0.0], [3.0, 1.0]])  # runs x tasks
    y = np.array([[2.0, 0.0], [2.0, 2.0]])
    # task 0: x {1, 3} vs y {2, 2}: 3 beats both -> 2/4; task 1: x {0, 1} vs y {0, 2}: tie 0.5 + 1 -> 1.5/4
    assert probability_of_improvement(x, y) == pytest.approx((2 / 4 + 1.5 / 4) / 2)
    assert probability_of_improvement(y, y) == pytest.approx(0.5)


def test_the_bootstrap_interval_holds_the_estimate_and_collapses_without_spread():
    rng = np.random.default_rng(1)
    scores = rng.uniform(0.6, 0.9, size=(5, 4))
    low, high = stratified_bootstrap("iqm", [scores], reps=500)
    assert low <= iqm(scores) <= high and high - low > 0
    assert stratified_bootstrap("iqm", [scores], reps=500) == (low, high)  # seeded
    flat = np.full((3, 4), 0.7)
    assert stratified_bootstrap("iqm", [flat], reps=200) == pytest.approx((0.7, 0.7))


def _results(seeds):
    out = []
    for pair in ("a->b", "b->a", "a->c"):
        source, target = pair.split("->")
        for strategy, loss, base in (("finetune", "none", 0.70), ("finetune", "dann", 0.705), ("scratch", "none", 0.5)):
            for seed in seeds:
                out.append({"status": "ok", "backbone": "net", "source": f"d:{source}", "target": f"d:{target}",
                            "strategy": strategy, "loss": loss, "shots": 0, "seed": seed, "target_acc": base + 0.01 * seed,
                            "model_selection": "last", "transfer_kind": "domain-adaptation", "run_id": f"{pair}{strategy}{loss}{seed}"})
    return out


def test_the_summary_ranks_methods_and_warns_below_three_seeds():
    summary = robust_summary(_results([0, 1]), reps=300)
    assert summary["baseline"] == "finetune/none" and len(summary["tasks"]) == 3 and summary["seeds"] == [0, 1]
    rows = {r["method"]: r for r in summary["rows"]}
    assert [r["method"] for r in summary["rows"]] == ["finetune/dann", "finetune/none", "scratch/none"]
    assert rows["finetune/dann"]["p_improve"] == pytest.approx(0.75)  # per task: 0.705, 0.715 vs 0.70, 0.71 -> 3 / 4
    assert rows["scratch/none"]["p_improve"] == 0.0 and "p_improve" not in rows["finetune/none"]
    assert "fewer than 3" in summary["warning"]
    assert robust_summary(_results([0, 1, 2]), reps=100)["warning"] is None
    markdown = export(_results([0, 1]), "md")
    assert "## Robust aggregates across pairs" in markdown and "Warning: 2 seed(s) per task" in markdown
    assert json.loads(export(_results([0]), "json"))["robust"]["rows"][0]["method"] == "finetune/dann"
