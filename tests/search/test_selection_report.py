"""The selection table on hand-made trial records: picks, regret and Kendall tau."""

import pytest

from tlbench.plugin.errors import UserError
from tlbench.report import leaderboard
from tlbench.report.selection import annotate, selection_markdown, selection_rows

ABOUT = {"source-val": {"higher_is_better": True, "oracle": False}, "entropy": {"higher_is_better": False, "oracle": False},
         "target-oracle": {"higher_is_better": True, "oracle": True}}


def trial(index, seed, acc, source_val, entropy, loss="dann"):
    return {"run_id": f"{loss}{index}{seed}", "backbone": "smallcnn", "source": "a", "target": "b", "strategy": "finetune",
            "loss": loss, "shots": 0, "seed": seed, "status": "ok", "target_acc": acc, "model_selection": "last",
            "trial": {"index": index, "sampler": "random", "seed": 0, "defaults": index == 0},
            "validator_scores": {"source-val": source_val, "entropy": entropy, "target-oracle": acc}, "validators": ABOUT}


# seed 0: source-val picks trial 2 (acc 0.6), entropy (lower is better) picks trial 1 (0.9), oracle 0.9
# seed 1: source-val picks trial 1 (0.7), entropy picks trial 1 (0.7), oracle trial 0 (0.8)
RUNS = [trial(0, 0, 0.5, 0.80, 0.9), trial(1, 0, 0.9, 0.85, 0.1), trial(2, 0, 0.6, 0.95, 0.5),
        trial(0, 1, 0.8, 0.70, 0.6), trial(1, 1, 0.7, 0.90, 0.2), trial(2, 1, 0.4, 0.60, 0.8)]


def test_selected_accuracy_regret_and_kendall_tau_per_validator():
    (row,) = selection_rows(RUNS)
    assert row["trials"] == 3 and row["seeds"] == 2
    assert row["oracle_acc"] == pytest.approx(0.85) and row["defaults_acc"] == pytest.approx(0.65)
    source_val, entropy = row["validators"]["source-val"], row["validators"]["entropy"]
    assert source_val["selected_acc"] == pytest.approx(0.65) and source_val["regret"] == pytest.approx(0.2)
    assert entropy["selected_acc"] == pytest.approx(0.8) and entropy["regret"] == pytest.approx(0.05)
    # seed 0: source-val ranks (0.8, 0.85, 0.95) vs acc (0.5, 0.9, 0.6): tau 1/3; seed 1: (0.7, 0.9, 0.6) vs (0.8, 0.7, 0.4): 1/3
    assert source_val["kendall_tau"] == pytest.approx(1 / 3)
    # entropy, oriented (-score): seed 0 (-0.9, -0.1, -0.5) vs (0.5, 0.9, 0.6): tau 1; seed 1 (-0.6, -0.2, -0.8) vs (0.8, 0.7, 0.4): 1/3
    assert entropy["kendall_tau"] == pytest.approx(2 / 3)
    assert row["validators"]["target-oracle"]["regret"] == pytest.approx(0.0)
    md = selection_markdown(RUNS)
    assert "| 65.0 | 80.0 (5.0) | 65.0 (20.0) | 85.0 |" in md and "target-oracle" not in md  # the oracle is its own column


def test_main_table_shows_the_trials_select_picks_and_says_so():
    rows = leaderboard.aggregate(annotate(RUNS, "entropy"))
    assert len(rows) == 1 and rows[0]["seeds"] == 2 and rows[0]["target_acc"] == pytest.approx(0.8)
    assert "entropy scores best" in leaderboard.caption(rows)
    default = leaderboard.aggregate(RUNS)  # source-val unless told otherwise
    assert default[0]["target_acc"] == pytest.approx(0.65) and "source-val scores best" in leaderboard.caption(default)
    assert "ORACLE" in leaderboard.caption(leaderboard.aggregate(annotate(RUNS, "target-oracle")))
    plain = [{k: v for k, v in r.items() if k not in ("trial",)} for r in RUNS[:1]]
    assert "Search:" not in leaderboard.caption(leaderboard.aggregate(plain))
    with pytest.raises(UserError, match="no trial has a score of that validator; use one of entropy, source-val, target-oracle"):
        annotate(RUNS, "snd")


def test_exports_hold_the_selection_tables():
    import json

    from tlbench.report.formats import export

    md = export(RUNS, "md")
    assert "## Model selection over search trials" in md and "| 65.0 | 80.0 (5.0) | 65.0 (20.0) | 85.0 |" in md
    (row,) = json.loads(export(RUNS, "json"))["selection"]
    assert row["validators"]["entropy"]["regret"] == pytest.approx(0.05)
    plain = [dict(r, trial=None) for r in RUNS[:1]]  # no search: no section
    assert "Model selection" not in export(plain, "md") and json.loads(export(plain, "json"))["selection"] == []
