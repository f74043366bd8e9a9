"""The leaderboard section: each estimator's rank correlation with the fine-tuned accuracy."""

import io

import pytest
from rich.console import Console

from conftest import run_cli
from tlbench.report.leaderboard import render
from tlbench.transferability.correlation import correlations

ACCS = {"a": 0.90, "b": 0.80, "c": 0.70, "d": 0.60}


def record(backbone, seed, acc, scores, target="d:t", strategy="finetune", source="d:s"):
    return {
        "run_id": f"{backbone}-{seed}-{target}".replace(":", ""), "backbone": backbone, "source": source,
        "target": target, "strategy": strategy, "loss": "none", "shots": 10, "seed": seed, "status": "ok",
        "target_acc": acc, "onnx_max_abs_diff": 1e-6, "onnx_top1_agreement": 1.0,
        "transferability": {"scores": scores},
    }


def grid():
    """Four candidates x 2 seeds: `right` orders them as fine-tuning does, `reverse` backwards,
    `spotty` scores only two of them, `swap` gets the top two the wrong way round."""
    out = []
    for i, (name, acc) in enumerate(ACCS.items()):
        for seed in (0, 1):
            scores = {"right": 10.0 - i + 0.1 * seed, "reverse": float(i), "spotty": float(i) if i < 2 else None,
                      "swap": [2.0, 3.0, 1.0, 0.0][i]}
            out.append(record(name, seed, acc + 0.01 * seed, scores))
    return out


def test_kendall_and_weighted_tau_and_regret_per_estimator():
    rows = {r["estimator"]: r for r in correlations(grid())}
    assert set(rows) == {"right", "reverse", "swap"}  # spotty scored 2 of 4: no correlation shown
    assert rows["right"]["kendall_tau"] == pytest.approx(1.0) and rows["right"]["weighted_tau"] == pytest.approx(1.0)
    assert rows["right"]["regret"] == pytest.approx(0.0) and rows["right"]["picked"] == "a@d:s"
    assert rows["reverse"]["kendall_tau"] == pytest.approx(-1.0)
    assert rows["reverse"]["regret"] == pytest.approx(0.30)  # picked d (60.5 %) instead of a (90.5 %)
    # one swap among 6 pairs: tau = (5 - 1) / 6; weighted tau punishes a swap at the top harder
    assert rows["swap"]["kendall_tau"] == pytest.approx(4 / 6)
    assert rows["swap"]["weighted_tau"] < rows["swap"]["kendall_tau"]
    assert rows["right"]["candidates"] == 4 and rows["right"]["of"] == 4


def test_groups_by_target_and_strategy_and_ignores_failed_runs():
    results = grid() + [dict(r, target="d:u", run_id=r["run_id"] + "u") for r in grid()[:4]]
    results.append(dict(record("e", 0, 0.99, {"right": 100.0}), status="failed"))
    rows = correlations(results)
    assert {r["target"] for r in rows} == {"d:t"}  # d:u has only 2 candidates
    assert all(r["of"] == 4 for r in rows)


def test_leaderboard_shows_the_section(tmp_path):
    buffer = io.StringIO()
    render(grid(), console=Console(file=buffer, width=250, color_system=None))
    text = buffer.getvalue()
    assert "transferability estimators vs fine-tuned accuracy: d:t, shots 10, finetune +" in text
    rows = {line.split("│")[1].strip(): line.split("│")[2:] for line in text.splitlines() if line.startswith("│ ")}
    assert [c.strip() for c in rows["reverse"]][:5] == ["4/4", "-1.00", "-1.00", "d@d:s", "30.0"]
    assert [c.strip() for c in rows["right"]][:5] == ["4/4", "+1.00", "+1.00", "a@d:s", "0.0"]


def test_leaderboard_without_scores_has_no_section(tmp_path):
    buffer = io.StringIO()
    render([dict(r, transferability=None) for r in grid()], console=Console(file=buffer, width=250, color_system=None))
    assert "transferability" not in buffer.getvalue()


def test_leaderboard_cli_prints_the_section(tmp_path):
    import json

    for r in grid():
        (tmp_path / r["run_id"]).mkdir()
        (tmp_path / r["run_id"] / "result.json").write_text(json.dumps(r))
    proc = run_cli("leaderboard", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Kendall tau" in proc.stdout and "weighted tau" in proc.stdout


def test_markdown_export_holds_the_section():
    from tlbench.report import formats

    md = formats.export(grid(), "md")
    assert "## Transferability estimators vs fine-tuned accuracy" in md and "Kendall's tau-b" in md
    assert "### d:t, shots 10, finetune + none" in md
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in md.split("## Transferability")[1].splitlines() if line.startswith("| ") and "estimator" not in line}
    assert rows["reverse"] == ["4/4", "-1.00", "-1.00", "d@d:s", "30.0"]
    assert rows["right"] == ["4/4", "+1.00", "+1.00", "a@d:s", "0.0"]
    assert "spotty" not in rows  # two scored candidates: no correlation
    assert "Transferability" not in formats.export([dict(r, transferability=None) for r in grid()], "md")


def test_json_export_holds_the_section_with_raw_numbers():
    import json

    from tlbench.report import formats

    section = json.loads(formats.export(grid(), "json"))["transferability"]
    rows = {r["estimator"]: r for r in section["rows"]}
    assert set(rows) == {"right", "reverse", "swap"} and "weighted tau" in section["caption"]
    assert rows["swap"]["kendall_tau"] == pytest.approx(4 / 6) and rows["swap"]["picked"] == "b@d:s"
    assert rows["reverse"]["regret"] == pytest.approx(0.30) and rows["reverse"]["target"] == "d:t"
    empty = json.loads(formats.export([dict(r, transferability=None) for r in grid()], "json"))
    assert empty["transferability"]["rows"] == []


def test_export_all_writes_the_section_to_csv_and_html(tmp_path):
    import csv

    from tlbench.report.exports import export_all

    paths = {p.name: p for p in export_all(grid(), tmp_path / "out")}
    rows = {r["estimator"]: r for r in csv.DictReader(paths["transferability.csv"].open(encoding="utf-8"))}
    assert float(rows["right"]["kendall_tau"]) == pytest.approx(1.0) and rows["right"]["candidates"] == "4"
    page = paths["leaderboard.html"].read_text(encoding="utf-8")
    assert "Transferability estimators vs fine-tuned accuracy" in page and page.count('<table class="lb">') == 2
    assert '>d@d:s</td>' in page and "Transferability" in paths["leaderboard.md"].read_text(encoding="utf-8")
    bare = {p.name for p in export_all([dict(r, transferability=None) for r in grid()], tmp_path / "bare")}
    assert "transferability.csv" not in bare


def test_scores_equal_up_to_float_noise_are_ties_not_a_ranking():
    from tlbench.transferability.correlation import correlations

    def record(backbone, acc, score):
        return {"status": "ok", "backbone": backbone, "source": "digits:mnist", "target": "digits:uci",
                "strategy": "finetune", "loss": "none", "shots": 10, "target_acc": acc,
                "transferability": {"scores": {"flat": score, "real": acc}}}

    results = [record("a", 0.9, 9.0 + 1e-13), record("b", 0.5, 9.0 - 1e-13), record("c", 0.7, 9.0)]
    rows = {row["estimator"]: row for row in correlations(results)}
    assert rows["flat"]["kendall_tau"] is None and rows["flat"]["picked"] == "(all tied)" and rows["flat"]["regret"] is None
    assert rows["real"]["kendall_tau"] == pytest.approx(1.0) and rows["real"]["regret"] == 0


def test_plain_hscore_refuses_fewer_examples_than_dimensions():
    import numpy as np

    from tlbench_plugins.estimators.hscore import hscore

    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="hscore-lw"):
        hscore(rng.normal(size=(20, 64)), np.repeat(np.arange(4), 5))
    assert hscore(rng.normal(size=(200, 8)), np.repeat(np.arange(4), 50)) < 1.0  # random features carry little


@pytest.mark.parametrize("extra", [0, 1])
def test_plain_hscore_refuses_d_plus_one_examples_where_every_model_scores_classes_minus_one(extra):
    """With n = d + 1 rows the score is exactly classes - 1 whatever the features (computed here by
    numpy's pseudo-inverse, independently of the plugin), so the plugin must refuse n <= d + 1."""
    import numpy as np

    from tlbench_plugins.estimators.hscore import hscore

    rng = np.random.default_rng(extra)
    d, classes = 6, 3
    f = rng.normal(size=(d + 1, d))
    y = np.arange(d + 1) % classes
    centred = f - f.mean(axis=0)
    g = np.stack([centred[y == label].mean(axis=0) for label in y])
    by_hand = np.trace(np.linalg.pinv(centred.T @ centred) @ (g.T @ g))
    assert by_hand == pytest.approx(classes - 1, rel=1e-8)  # the degenerate case the refusal exists for
    with pytest.raises(ValueError, match=f"more than {d + 1} examples"):
        hscore(f, y)
    bigger = rng.normal(size=(d + 2 + extra, d))
    assert hscore(bigger, np.arange(len(bigger)) % classes) < classes - 1 - 1e-6  # d + 2 rows: a real score
