"""Metrics recomputed from saved predictions: hand-computed on a small case, equal to the live
accuracy on real runs, and `tlbench leaderboard --metric` ranks by them and names them."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conftest import read_results, run_cli
from tlbench.execution.predictions import PREDICTIONS_FILE, load_predictions
from tlbench.utils.metrics import classification_metrics


def test_metrics_equal_a_hand_computation_and_scikit_learn():
    labels = [0, 0, 0, 0, 1, 2]
    preds = [0, 0, 0, 1, 1, 1]
    got = classification_metrics(labels, preds, num_classes=4)  # class 3 absent from the labels
    # by hand: recalls 3/4, 1/1, 0/1; precisions 3/3, 1/3, none predicted; F1s 6/7, 1/2, 0
    assert got["acc"] == pytest.approx(4 / 6)
    assert got["balanced_acc"] == pytest.approx((3 / 4 + 1 + 0) / 3)
    assert got["macro_f1"] == pytest.approx((6 / 7 + 1 / 2 + 0) / 3)
    assert got["worst_class_acc"] == 0.0
    assert got["per_class_acc"] == [pytest.approx(0.75), 1.0, 0.0, None]
    from sklearn.metrics import balanced_accuracy_score, f1_score

    assert got["balanced_acc"] == pytest.approx(balanced_accuracy_score(labels, preds))
    assert got["macro_f1"] == pytest.approx(f1_score(labels, preds, average="macro", labels=[0, 1, 2], zero_division=0))


def test_saved_predictions_give_the_live_accuracy_and_the_recorded_metrics(toy_grid):
    for result in read_results(toy_grid):
        run_dir = next(p for p in toy_grid.iterdir() if p.name.endswith(result["run_id"]))
        arrays = load_predictions(run_dir)
        assert arrays["target_label"].shape == arrays["target_pred"].shape == arrays["target_row"].shape
        assert arrays["target_topk_prob"].dtype == np.float16 and arrays["target_topk_class"].shape[1] >= 2
        again = classification_metrics(arrays["target_label"], arrays["target_pred"], len(result["target_classes"]))
        assert again["acc"] == pytest.approx(result["target_acc"], abs=1e-6)  # the live accuracy, from the same logits
        assert again == result["metrics"]["target"]
        assert (arrays["target_topk_class"][:, 0] == arrays["target_pred"]).all()
        if result["source_acc"] is not None:
            source = classification_metrics(arrays["source_label"], arrays["source_pred"])
            assert source["acc"] == pytest.approx(result["source_acc"], abs=1e-6)


def test_leaderboard_ranks_by_the_metric_and_names_it(toy_grid, tmp_path):
    board = json.loads(run_cli("leaderboard", toy_grid, "--format", "json", "--metric", "balanced_acc").stdout)
    captions = " ".join(board["notes"]["captions"].values())
    assert "balanced accuracy" in captions and "--metric balanced_acc" in captions
    expected = {}
    for result in read_results(toy_grid):
        expected.setdefault(result["strategy"], []).append(result["metrics"]["target"]["balanced_acc"])
    for row in board["leaderboard"]:
        assert row["target_acc"] == pytest.approx(np.mean(expected[row["strategy"]]))
    plain = json.loads(run_cli("leaderboard", toy_grid, "--format", "json").stdout)
    assert "Target accuracy on" in " ".join(plain["notes"]["captions"].values())
    copy = tmp_path / "runs"
    shutil.copytree(toy_grid, copy)
    next(copy.glob(f"*/{PREDICTIONS_FILE}")).unlink()
    for path in copy.glob("*/result.json"):  # as results written before predictions were saved
        record = json.loads(path.read_text())
        if not (path.parent / PREDICTIONS_FILE).exists():
            record.pop("metrics", None)
            path.write_text(json.dumps(record))
    done = run_cli("leaderboard", copy, "--format", "json", "--metric", "macro_f1")
    assert done.returncode == 0 and "left out 1 run(s) without saved predictions" in done.stderr
    bad = run_cli("leaderboard", toy_grid, "--metric", "f1")
    assert bad.returncode == 2 and "--metric 'f1' is not one of" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
