"""Leaderboard statistics, exports and plots on hand-made result sets (no training)."""

import json

import pytest

from conftest import run_cli
from tlbench.report import formats, leaderboard

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def result(strategy, acc, seed=0, shots=10, source="d:a", target="d:b", backbone="net", loss="none", **extra):
    """One hand-made ``ok`` result record."""
    record = dict(
        run_id=f"{backbone}-{source}-{target}-{strategy}-{loss}-{shots}-{seed}".replace(":", ""),
        backbone=backbone, source=source, target=target, strategy=strategy, loss=loss, shots=shots, seed=seed,
        status="ok", target_acc=acc, source_acc=0.9, train_seconds=2.0, train_samples_per_s=500.0,
        torch_latency_ms=1.0, ort_latency_ms=0.5, onnx_max_abs_diff=1e-6, onnx_top1_agreement=1.0, onnx_size_mb=0.2,
    )
    record.update(extra)
    return record


def write_results(directory, results):
    for r in results:
        run = directory / r["run_id"]
        run.mkdir(parents=True, exist_ok=True)
        (run / "result.json").write_text(json.dumps(r))
    return directory


def shots_grid():
    """Three strategies x shots 1, 10, all x 3 seeds on one pair."""
    base = {"scratch": 0.30, "finetune": 0.60, "linear-probe": 0.50}
    bump = {1: 0.0, 10: 0.1, "all": 0.3}
    noise = (-0.01, 0.0, 0.01)
    return [
        result(s, b + bump[shots] + noise[seed], seed=seed, shots=shots)
        for s, b in base.items() for shots in bump for seed in range(3)
    ]


def test_plot_file_png_draws_accuracy_vs_shots(tmp_path):
    write_results(tmp_path / "runs", shots_grid())
    out = tmp_path / "shots.png"
    proc = run_cli("leaderboard", tmp_path / "runs", "--plot", out, "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes().startswith(PNG_MAGIC) and out.stat().st_size > 10_000


def noise_set():
    """One budget, five strategies with designed gaps: a tie, a clear and an unclear negative transfer."""
    accs = {
        "best": (0.80, 0.82, 0.84),
        "close": (0.78, 0.79, 0.80),      # 95% CI [0.765, 0.815] overlaps best's [0.770, 0.870]: a tie
        "scratch": (0.60, 0.61, 0.62),
        "wobbly": (0.58, 0.63, 0.60),     # below scratch on average, but not on every seed
        "bad": (0.50, 0.51, 0.52),        # 0.10 below scratch on every seed
    }
    return [result(s, a, seed=i) for s, values in accs.items() for i, a in enumerate(values)]


def by_strategy(rows):
    return {r["strategy"]: r for r in rows}


def test_mean_std_and_t_interval_match_hand_computation():
    from tlbench.report.stats import summarize, t_critical

    s = summarize([0.5, 0.6, 0.7])
    half = 4.302653 * 0.1 / 3 ** 0.5
    assert s.n == 3 and s.mean == pytest.approx(0.6) and s.std == pytest.approx(0.1)
    assert (s.ci_low, s.ci_high) == (pytest.approx(0.6 - half, abs=1e-6), pytest.approx(0.6 + half, abs=1e-6))
    assert t_critical(1) == pytest.approx(12.706, abs=1e-3) and t_critical(30) == pytest.approx(2.042, abs=1e-3)
    one = summarize([0.7, None])
    assert one.n == 1 and one.std == 0.0 and one.ci_low is None
    assert summarize([None]) is None


def test_rank_best_ties_and_negative_transfer():
    rows = by_strategy(leaderboard.aggregate(noise_set()))
    assert [rows[s]["rank"] for s in ("best", "close", "scratch", "wobbly", "bad")] == [1, 2, 3, 4, 5]
    assert rows["best"]["best"] and not rows["best"]["tie_with_best"]
    assert rows["close"]["tie_with_best"] and not rows["close"]["best"]
    assert not any(rows[s]["tie_with_best"] or rows[s]["best"] for s in ("scratch", "wobbly", "bad"))
    assert rows["best"]["target_acc"] == pytest.approx(0.82) and rows["best"]["target_acc_std"] == pytest.approx(0.02)
    assert rows["best"]["target_acc_ci_low"] == pytest.approx(0.82 - 4.302653 * 0.02 / 3 ** 0.5, abs=1e-6)
    assert rows["scratch"]["gain_vs_scratch"] == 0.0 and not rows["scratch"]["negative_transfer"]
    assert rows["best"]["gain_vs_scratch"] == pytest.approx(0.21) and not rows["best"]["negative_transfer"]
    assert rows["bad"]["gain_vs_scratch"] == pytest.approx(-0.10)
    assert rows["bad"]["negative_transfer"] and rows["bad"]["negative_transfer_clear"]
    assert rows["wobbly"]["negative_transfer"] and not rows["wobbly"]["negative_transfer_clear"]


def test_rank_is_per_budget_and_gain_compares_the_same_shots():
    rows = leaderboard.aggregate(shots_grid())
    for shots in (1, 10, "all"):
        group = by_strategy(r for r in rows if r["shots"] == shots)
        assert [group[s]["rank"] for s in ("finetune", "linear-probe", "scratch")] == [1, 2, 3]
        assert group["finetune"]["gain_vs_scratch"] == pytest.approx(0.30)
    assert [r["shots"] for r in rows] == [1] * 3 + [10] * 3 + ["all"] * 3


def test_one_seed_ties_only_on_equal_means_and_missing_baseline_gives_no_gain():
    rows = by_strategy(leaderboard.aggregate([result("a", 0.5), result("b", 0.5), result("c", 0.49)]))
    assert rows["a"]["best"] and rows["b"]["best"] and not rows["c"]["tie_with_best"]
    assert rows["c"]["gain_vs_scratch"] is None and not rows["c"]["negative_transfer"]
    assert rows["c"]["target_acc_ci_low"] is None


def test_markdown_marks_best_ties_negatives_and_states_the_rules():
    md = formats.export(noise_set(), "md")
    lines = {line.split("|")[2].strip(): line for line in md.splitlines() if line.startswith("| net")}
    assert "**★ 82.0 ± 2.0**" in lines["best"] and "≈ 79.0 ± 1.0" in lines["close"]
    assert "**-10.0 NEG**" in lines["bad"] and "-0.7 neg" in lines["wobbly"] and "NEG" not in lines["wobbly"]
    assert "[77.0, 87.0]" in lines["best"]
    assert "95% interval overlaps the best's" in md and "Reported checkpoint: last: the last training step" in md


def test_csv_and_json_hold_the_numbers():
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(formats.export(noise_set(), "csv"))))
    bad = next(r for r in rows if r["strategy"] == "bad")
    assert float(bad["gain_vs_scratch"]) == pytest.approx(-0.10) and bad["negative_transfer_clear"] == "True"
    assert bad["rank"] == "5" and float(bad["target_acc_ci_high"]) > float(bad["target_acc_ci_low"])
    data = json.loads(formats.export(noise_set(), "json"))
    assert {r["strategy"] for r in data["leaderboard"] if r["tie_with_best"]} == {"close"}
    assert "tie_rule" in data["notes"] and data["failures"] == []


def test_columns_switch_and_int8_columns_appear_when_present():
    plain = formats.export(noise_set(), "md")
    assert "INT8" not in plain and "ONNX parity" in plain
    with_int8 = noise_set() + [result("quantized", 0.7, int8_target_acc=0.69, int8_latency_ms=0.25, int8_method="static-qdq")]
    md = formats.export(with_int8, "md")
    assert "INT8 acc %" in md and "INT8 ms" in md
    quant_line = next(line for line in md.splitlines() if "| quantized |" in line)
    best_line = next(line for line in md.splitlines() if "| best |" in line)
    assert "69.0" in quant_line and "0.250" in quant_line and "| - |" in best_line
    chosen = formats.export(with_int8, "md", columns="acc,int8_method,provenance")
    header = next(line for line in chosen.splitlines() if line.startswith("| backbone"))
    assert header.endswith("| target acc % | INT8 method | provided by |") and "static-qdq" in chosen
    csv_text = formats.export(with_int8, "csv", columns="train_s")
    assert csv_text.splitlines()[0].endswith("tie_with_best,train_seconds")


def test_provenance_column_names_the_distribution():
    prov = {"strategies": {"name": "best", "plugin": "basic", "distribution": "tlbench", "version": "0.1.0"},
            "backbones": {"name": "net", "plugin": "x.py", "distribution": None, "version": None}}
    md = formats.export([result("best", 0.8, provenance=prov)], "md", columns="provenance")
    assert "strategy: best (tlbench 0.1.0)" in md and "backbone: net (file x.py)" in md


def test_caption_states_the_model_selection_and_flags_the_oracle():
    oracle = [result("finetune", 0.9, model_selection="target-oracle")]
    assert "oracle selection: optimistic" in formats.export(oracle, "md")
    mixed = oracle + [result("finetune", 0.8, seed=1, train={"model_selection": "source-val"})]
    rows = leaderboard.aggregate(mixed)
    assert sorted(r["model_selection"] for r in rows) == ["source-val", "target-oracle"]  # never averaged together
    assert "| model_selection |" in formats.export(mixed, "md")


def test_bad_columns_and_html_export_from_the_cli(tmp_path):
    runs = write_results(tmp_path / "runs", noise_set())
    bad = run_cli("leaderboard", runs, "--columns", "acc,speed")
    assert bad.returncode == 2 and "unknown column 'speed'" in bad.stderr and "Traceback" not in bad.stderr
    page = run_cli("leaderboard", runs, "--format", "html", "--columns", "acc,gain")
    assert page.returncode == 0, page.stderr
    assert page.stdout.count("<table") == 1 and page.stdout.count("data:image/png;base64,") == 4
    assert 'neg-clear"' in page.stdout and "<script>" in page.stdout and "http" not in page.stdout.split("<body>")[1]


def test_plot_dir_and_export_all_write_every_file(tmp_path):
    runs = write_results(tmp_path / "runs", shots_grid() + [result("finetune", 0.7, source="d:b", target="d:a", ort_latency_ms=0.9)])
    proc = run_cli("leaderboard", runs, "--export-all", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    names = {p.name for p in (tmp_path / "out").iterdir()}
    assert names == {"leaderboard.md", "leaderboard.csv", "leaderboard.json", "leaderboard.html",
                     "accuracy_vs_shots.png", "accuracy_vs_latency.png", "best_gain_heatmap.png", "robust_iqm.png"}
    for png in (tmp_path / "out").glob("*.png"):
        assert png.read_bytes().startswith(PNG_MAGIC) and png.stat().st_size > 5_000
    assert "d:b -> d:a" in (tmp_path / "out" / "leaderboard.md").read_text()


def test_pareto_front_keeps_only_undominated_points():
    from tlbench.report.plots import pareto_front

    points = [(1.0, 50.0), (2.0, 70.0), (1.5, 40.0), (3.0, 65.0), (0.5, 30.0), (4.0, 90.0)]
    assert pareto_front(points) == [4, 0, 1, 5]


def test_selector_restores_the_best_checkpoint_and_keeps_scoring_time_apart():
    import torch

    from tlbench.plugin.contracts import Phase
    from tlbench.training.selection import Selector
    from tlbench.training.loop import fit

    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    x, y = torch.randn(16, 3), torch.randint(0, 2, (16,))
    scores, snapshots = iter([0.1, 0.9, 0.3]), []

    def score(m):
        snapshots.append(m.weight.detach().clone())
        return next(scores)

    selector = Selector(score, every=2, name="source-val")
    objective = lambda progress: ({"ce": torch.nn.functional.cross_entropy(model(x), y)}, len(y))  # noqa: E731
    fit(model, [Phase("all", [{"params": list(model.parameters()), "lr": 0.1}], 6)], objective, selector=selector)
    assert selector.evaluations == 3 and selector.best_step == 4
    assert torch.equal(model.weight, snapshots[1]) and not torch.equal(model.weight, snapshots[2])
    assert selector.as_dict()["model_selection"] == "source-val" and selector.as_dict()["selection_score"] == 0.9


def test_model_selection_setting_is_validated_and_last_is_its_default(registry):
    """(That ids written before model_selection existed still resume is checked against the
    committed results in tests/execution/test_resume_committed.py.)"""
    from tlbench.plugin.errors import UserError
    from tlbench.grid import expand

    base = {"backbone": ["smallcnn"], "source": ["toy:a"], "target": ["toy:b"], "strategy": ["finetune"],
            "loss": ["none"], "shots": [5], "seeds": [0]}
    with pytest.raises(UserError, match="model_selection"):
        expand({**base, "train": {"model_selection": "best"}}, registry)
    default = expand(base, registry)[0]
    explicit = expand({**base, "train": {"model_selection": "last"}}, registry)[0]
    oracle = expand({**base, "train": {"model_selection": "target-oracle"}}, registry)[0]
    assert default.run_id == explicit.run_id != oracle.run_id
    assert default.train.model_selection == "last" and oracle.train.model_selection == "target-oracle"


def test_gains_over_control_and_none_are_seed_paired_and_need_the_same_recipe():
    sgd, adam = {"optimizer": "sgd", "lr": 0.01}, {"optimizer": "adam", "lr": 0.001}
    runs = []
    for seed, (none, control, mmd, odd) in enumerate([(0.30, 0.50, 0.60, 0.9), (0.20, 0.40, 0.52, 0.9), (0.40, 0.60, 0.69, 0.9)]):
        runs += [
            result("finetune", none, seed=seed, shots=0, loss="none", transfer_recipe=adam),
            result("finetune", control, seed=seed, shots=0, loss="control", transfer_recipe=sgd),
            result("finetune", mmd, seed=seed, shots=0, loss="mmd", transfer_recipe=sgd),
            result("finetune", odd, seed=seed, shots=0, loss="odd", transfer_recipe=adam),  # another recipe
        ]
    rows = {r["loss"]: r for r in leaderboard.aggregate(runs)}
    assert rows["mmd"]["gain_vs_control"] == pytest.approx(0.1033, abs=1e-3)  # (+0.10, +0.12, +0.09) / 3
    assert rows["mmd"]["gain_vs_control_ci_low"] > 0
    assert rows["mmd"]["gain_vs_none"] == pytest.approx(0.3033, abs=1e-3)
    assert rows["odd"]["gain_vs_control"] is None  # a control with another recipe is not its control
    assert rows["odd"]["gain_vs_none"] == pytest.approx(0.6)
    assert rows["control"]["gain_vs_control"] is None
    md = formats.export(runs, "md")
    assert "gain vs control" in md and "gain vs none" in md and "+10.3 [" in md
