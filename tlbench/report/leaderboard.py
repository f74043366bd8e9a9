"""Aggregate stored results over seeds and rank them and render them as rich tables (text formats: tlbench.report.formats).

One row per (source, target, backbone, strategy, loss, shots, model selection) over the ``ok``
seeds: mean, std and 95% t-interval of target accuracy; the gain over ``scratch`` at the same
shots, paired by seed; a rank per source -> target and shots; the best row of each such group,
and rows whose 95% interval overlaps the best's (ties within the noise).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable

from tlbench.plugin.errors import UserError
from tlbench.report.fit import column_width, fit_keys, wrap_header
from tlbench.report.selection import annotate, caption_note, main_table_runs, render_selection
from tlbench.utils.metrics import METRICS
from tlbench.report.stats import intervals_overlap, summarize
from tlbench.settings.train import LAST_STEP

BASELINE = "scratch"
CONTROL = "control"  # the adaptation loop without its adaptation term (tlbench_plugins.losses.control)
# Tables grouped by transfer kind (tlbench.grid.domains' names, spelled here so reading results
# never imports the grid package and, through it, torch).
KIND_ORDER = {"domain-adaptation": 0, "domain-generalisation": 1, "task-transfer": 2, "pretrained": 3}
SOURCE_ONLY = "none"  # no adaptation loss: at --shots 0 the source model as it is
GROUP_KEYS = ("backbone", "strategy", "loss", "shots")
ROW_KEYS = ("source", "target") + GROUP_KEYS + ("model_selection",)
CELL_KEYS = ROW_KEYS + ("transfer_kind",)  # a pair adapted to and the same pair generalised to are two rows
PARITY_ATOL = 1e-3
MEAN_FIELDS = (
    "source_acc", "train_seconds", "train_samples_per_s",
    "torch_latency_ms", "torch_latency_ms_b64", "ort_latency_ms", "ort_latency_ms_b64", "onnx_size_mb",
    "int8_target_acc", "int8_acc_drop", "int8_latency_ms", "int8_latency_ms_b64", "int8_size_mb",
)
PROVENANCE_KINDS = {"backbones": "backbone", "datasets": "dataset", "strategies": "strategy", "adaptation_losses": "loss"}
SELECTION_TEXT = {
    LAST_STEP: "the last training step",
    "source-val": "the best step on a held-out slice of the source train split",
    "target-oracle": "the best step on the target TEST split (oracle selection: optimistic, not a fair estimate)",
}
TIE_RULE = "≈ = tie: its 95% interval overlaps the best's (one seed: equal means only)"
NEG_RULE = "neg = below scratch; NEG = the seed-paired 95% interval of the gain lies below 0"


def shots_order(shots) -> float:
    """Sort key of a shots value: numbers ascending, then ``all``."""
    return float("inf") if shots == "all" else float(shots)


def model_selection(result: dict) -> str:
    """Which checkpoint a result reports (older results without the field: the last step)."""
    return result.get("model_selection") or (result.get("train") or {}).get("model_selection") or LAST_STEP


def _provenance(results: list[dict]) -> dict:
    out = {}
    for kind, label in PROVENANCE_KINDS.items():
        entry = (results[0].get("provenance") or {}).get(kind)
        if entry:
            source = f"{entry.get('distribution')} {entry.get('version') or ''}".strip() if entry.get("distribution") else f"file {entry.get('plugin')}"
            out[label] = f"{entry.get('name')} ({source})"
    return out


def _summary_fields(prefix: str, summary) -> dict:
    if summary is None:
        return {prefix: None, f"{prefix}_std": None, f"{prefix}_ci_low": None, f"{prefix}_ci_high": None}
    return {prefix: summary.mean, f"{prefix}_std": summary.std, f"{prefix}_ci_low": summary.ci_low, f"{prefix}_ci_high": summary.ci_high}


def _cell(key: tuple, runs: list[dict]) -> dict:
    row = dict(zip(ROW_KEYS, key))
    accs = {r["seed"]: r.get("target_acc") for r in runs}
    row["seeds"] = len(runs)
    row.update(_summary_fields("target_acc", summarize(accs.values())))
    if row["target_acc_ci_low"] is not None:  # an accuracy interval cannot leave [0, 1]
        row["target_acc_ci_low"] = max(0.0, row["target_acc_ci_low"])
        row["target_acc_ci_high"] = min(1.0, row["target_acc_ci_high"])
    for name in MEAN_FIELDS:
        s = summarize(r.get(name) for r in runs)
        row[name] = None if s is None else s.mean
    diffs = [r["onnx_max_abs_diff"] for r in runs if r.get("onnx_max_abs_diff") is not None]
    agree = [r["onnx_top1_agreement"] for r in runs if r.get("onnx_top1_agreement") is not None]
    row["onnx_max_abs_diff"] = max(diffs) if diffs else None
    row["onnx_top1_agreement"] = min(agree) if agree else None
    row["parity_ok"] = bool(diffs) and row["onnx_max_abs_diff"] < PARITY_ATOL and row["onnx_top1_agreement"] == 1.0
    methods = sorted({str(r["int8_method"]) for r in runs if r.get("int8_method")})
    row["int8_method"] = ", ".join(methods) or None
    row["int8_failed"] = sum(bool(r.get("int8_error")) for r in runs)  # runs whose INT8 step failed
    row["provenance"] = _provenance(runs)
    row["selected_by"] = runs[0].get("selected_by")  # search trials: the validator that picked them
    row["selected_by_oracle"] = runs[0].get("selected_by_oracle", False)
    row["transfer_kind"] = next((r["transfer_kind"] for r in runs if r.get("transfer_kind")), None)
    recipes = {json.dumps(r.get("transfer_recipe"), sort_keys=True) for r in runs}
    row["_recipe"] = recipes.pop() if len(recipes) == 1 else None
    row["_accs"] = accs
    row["metric"] = runs[0].get("_metric", "acc")  # tlbench leaderboard --metric
    return row


def _add_gain(rows: list[dict]) -> None:
    baselines = {tuple(r[k] for k in CELL_KEYS if k != "strategy"): r for r in rows if r["strategy"] == BASELINE}
    for row in rows:
        key = tuple(row[k] for k in CELL_KEYS if k != "strategy")
        base = baselines.get(key) or baselines.get(tuple("none" if k == "loss" else row[k] for k in CELL_KEYS if k != "strategy"))
        row["gain_vs_scratch"] = row["gain_ci_low"] = row["gain_ci_high"] = None
        if base is not None:
            row["gain_vs_scratch"] = row["target_acc"] - base["target_acc"]
            common = sorted(set(row["_accs"]) & set(base["_accs"]))
            paired = summarize(row["_accs"][s] - base["_accs"][s] for s in common)
            if paired is not None and paired.ci_low is not None:
                row["gain_ci_low"], row["gain_ci_high"] = paired.ci_low, paired.ci_high
        gain = row["gain_vs_scratch"]
        row["negative_transfer"] = gain is not None and gain < 0
        row["negative_transfer_clear"] = row["negative_transfer"] and row["gain_ci_high"] is not None and row["gain_ci_high"] < 0


def _add_loss_gain(rows: list[dict], baseline: str, prefix: str, same_recipe: bool) -> None:
    """``{prefix}``: the gain over the ``baseline`` loss's row of the same cell, paired by seed,
    with its 95% interval. ``same_recipe``: only where the baseline trained with the very same
    recipe (the ``control``, so the difference is the adaptation term's alone)."""
    key_of = lambda r: tuple(r[k] for k in CELL_KEYS if k != "loss")  # noqa: E731
    baselines = {key_of(r): r for r in rows if r["loss"] == baseline}
    for row in rows:
        row[prefix] = row[f"{prefix}_ci_low"] = row[f"{prefix}_ci_high"] = None
        base = baselines.get(key_of(row))
        if base is None or row is base or (same_recipe and (base["_recipe"] is None or base["_recipe"] != row["_recipe"])):
            continue
        common = sorted(set(row["_accs"]) & set(base["_accs"]))
        paired = summarize(row["_accs"][s] - base["_accs"][s] for s in common)
        if paired is not None:
            row[prefix] = paired.mean
            row[f"{prefix}_ci_low"], row[f"{prefix}_ci_high"] = paired.ci_low, paired.ci_high


def _add_ranks(rows: list[dict]) -> None:
    groups = defaultdict(list)
    for row in rows:
        groups[(row["source"], row["target"], row["transfer_kind"], row["shots"], row["model_selection"])].append(row)
    for group in groups.values():
        best = max(group, key=lambda r: r["target_acc"])
        best_summary = summarize(best["_accs"].values())
        for row in group:
            row["rank"] = 1 + sum(other["target_acc"] > row["target_acc"] for other in group)
            row["best"] = row["target_acc"] == best["target_acc"]
            row["tie_with_best"] = not row["best"] and intervals_overlap(summarize(row["_accs"].values()), best_summary)


def aggregate(results: list[dict]) -> list[dict]:
    """Leaderboard rows (see the module docstring) over the ``ok`` results, sorted by
    source, target, shots and descending target accuracy."""
    cells = defaultdict(list)
    for r in main_table_runs(results):  # search trials: only each seed's trial picked by --select
        if r.get("status") == "ok" and r.get("target_acc") is not None:
            cells[(r["source"], r["target"]) + tuple(r[k] for k in GROUP_KEYS) + (model_selection(r), r.get("transfer_kind"))].append(r)
    rows = [_cell(key, runs) for key, runs in cells.items()]
    _add_gain(rows)
    _add_loss_gain(rows, CONTROL, "gain_vs_control", same_recipe=True)
    _add_loss_gain(rows, SOURCE_ONLY, "gain_vs_none", same_recipe=False)
    _add_ranks(rows)
    for row in rows:
        del row["_accs"], row["_recipe"]
    rows.sort(key=lambda r: (KIND_ORDER.get(r["transfer_kind"], 0), r["source"], r["target"], shots_order(r["shots"]), r["model_selection"], -r["target_acc"], r["strategy"]))
    return rows


def failures(results: list[dict]) -> list[dict]:
    """Runs that did not finish ok, with their error."""
    keep = ("run_id", "backbone", "source", "target", "strategy", "loss", "shots", "seed", "status", "error")
    return [{k: r.get(k) for k in keep} for r in results if r.get("status") != "ok"]


# -- columns -----------------------------------------------------------------------------------
def _num(value, digits=2):
    return "-" if value is None else f"{value:.{digits}f}"


def _pct(value):
    return "-" if value is None else f"{100 * value:.1f}"


def _acc_text(row):
    if row.get("seeds", 0) <= 1 or row.get("target_acc_std") is None:  # one seed: no spread to show
        return _pct(row["target_acc"])
    return f"{_pct(row['target_acc'])} ± {_pct(row['target_acc_std'])}"


def _ci_text(row):
    return "-" if row["target_acc_ci_low"] is None else f"[{_pct(row['target_acc_ci_low'])}, {_pct(row['target_acc_ci_high'])}]"


def _gain_text(row):
    gain = row["gain_vs_scratch"]
    if gain is None:
        return "-"
    text = f"{100 * gain:+.1f}"
    if row["negative_transfer"]:
        text += " NEG" if row["negative_transfer_clear"] else " neg"
    return text


def _paired_gain_text(prefix: str):
    def text(row):
        gain, low, high = row[prefix], row[f"{prefix}_ci_low"], row[f"{prefix}_ci_high"]
        if gain is None:
            return "-"
        return f"{100 * gain:+.1f}" + ("" if low is None else f" [{100 * low:+.1f}, {100 * high:+.1f}]")
    return text


def _parity_text(row):
    if row["onnx_max_abs_diff"] is None:
        return "-"
    text = f"{'ok' if row['parity_ok'] else 'FAIL'} {row['onnx_max_abs_diff']:.1e}"
    agreement = row["onnx_top1_agreement"]
    return text if agreement == 1.0 or agreement is None else f"{text}, top-1 {agreement:.3f}"


@dataclass(frozen=True)
class Column:
    """A switchable leaderboard column: its header, the raw fields behind it, and its text."""

    key: str
    header: str
    fields: tuple[str, ...]
    text: Callable[[dict], str]
    numeric: bool = True


COLUMNS = {c.key: c for c in (
    Column("rank", "rank", ("rank",), lambda r: str(r["rank"])),
    Column("acc", "target acc %", ("target_acc", "target_acc_std"), _acc_text),
    Column("ci", "95% CI %", ("target_acc_ci_low", "target_acc_ci_high"), _ci_text),
    Column("gain", "gain vs scratch (pts)", ("gain_vs_scratch", "gain_ci_low", "gain_ci_high", "negative_transfer", "negative_transfer_clear"), _gain_text),
    Column("gain_control", "gain vs control (pts, 95% CI)", ("gain_vs_control", "gain_vs_control_ci_low", "gain_vs_control_ci_high"),
           _paired_gain_text("gain_vs_control")),
    Column("gain_none", "gain vs none (pts, 95% CI)", ("gain_vs_none", "gain_vs_none_ci_low", "gain_vs_none_ci_high"),
           _paired_gain_text("gain_vs_none")),
    Column("source_acc", "source acc %", ("source_acc",), lambda r: _pct(r["source_acc"])),
    Column("train_s", "train s", ("train_seconds",), lambda r: _num(r["train_seconds"], 1)),
    Column("samples_s", "samples/s", ("train_samples_per_s",), lambda r: _num(r["train_samples_per_s"], 0)),
    Column("torch_ms", "torch ms", ("torch_latency_ms",), lambda r: _num(r["torch_latency_ms"], 3)),
    Column("ort_ms", "ORT ms", ("ort_latency_ms",), lambda r: _num(r["ort_latency_ms"], 3)),
    Column("int8_ms", "INT8 ms", ("int8_latency_ms",), lambda r: _num(r["int8_latency_ms"], 3)),
    Column("torch_ms_b64", "torch ms b64", ("torch_latency_ms_b64",), lambda r: _num(r["torch_latency_ms_b64"], 2)),
    Column("ort_ms_b64", "ORT ms b64", ("ort_latency_ms_b64",), lambda r: _num(r["ort_latency_ms_b64"], 2)),
    Column("int8_ms_b64", "INT8 ms b64", ("int8_latency_ms_b64",), lambda r: _num(r["int8_latency_ms_b64"], 2)),
    Column("onnx_mb", "ONNX MB", ("onnx_size_mb",), lambda r: _num(r["onnx_size_mb"], 3)),
    Column("int8_acc", "INT8 acc %", ("int8_target_acc", "int8_failed"), lambda r: _pct(r["int8_target_acc"])
           + (f" (INT8 FAILED x{r['int8_failed']})" if r.get("int8_failed") else "")),
    Column("int8_drop", "INT8 drop (pts)", ("int8_acc_drop",), lambda r: "-" if r["int8_acc_drop"] is None else f"{100 * r['int8_acc_drop']:+.1f}"),
    Column("int8_mb", "INT8 MB", ("int8_size_mb",), lambda r: _num(r["int8_size_mb"], 3)),
    Column("int8_method", "INT8 method", ("int8_method",), lambda r: r["int8_method"] or "-", numeric=False),
    Column("parity", "ONNX parity", ("parity_ok", "onnx_max_abs_diff", "onnx_top1_agreement"), _parity_text, numeric=False),
    Column("provenance", "provided by", ("provenance",),
           lambda r: "; ".join(f"{k}: {v}" for k, v in r["provenance"].items()) or "-", numeric=False),
)}
ID_COLUMNS = ("backbone", "strategy", "loss", "shots", "seeds")
DEFAULT_COLUMNS = ("rank", "acc", "ci", "gain", "source_acc", "train_s", "ort_ms", "onnx_mb", "parity")
INT8_DEFAULT = ("int8_acc", "int8_ms")
def choose_columns(spec: str | None, rows: list[dict]) -> list[str]:
    """Column keys from ``--columns``: ``default`` (INT8 columns added when any run has them),
    ``all``, or a comma-separated list of keys; unknown keys are a UserError."""
    if spec is None or spec.strip() == "default":
        chosen = list(DEFAULT_COLUMNS)
        for key in ("gain_none", "gain_control"):  # adaptation grids: gains over source-only and the control
            if any(r.get(COLUMNS[key].fields[0]) is not None for r in rows):
                chosen.insert(chosen.index("gain") + 1, key)
        if any(r.get("int8_target_acc") is not None or r.get("int8_latency_ms") is not None or r.get("int8_failed") for r in rows):
            chosen[chosen.index("ort_ms") + 1:chosen.index("ort_ms") + 1] = INT8_DEFAULT
        return chosen
    if spec.strip() == "all":
        return list(COLUMNS)
    keys = [k.strip() for k in spec.split(",") if k.strip()]
    bad = [k for k in keys if k not in COLUMNS]
    if bad or not keys:
        raise UserError(f"unknown column {bad[0] if bad else spec!r}; choose from default, all, or {', '.join(COLUMNS)}")
    return list(dict.fromkeys(keys))


def id_text(row: dict, key: str) -> str:
    return str(row[key])


def pair_groups(rows: list[dict]) -> dict[str, list[dict]]:
    """Rows grouped by ``source -> target (transfer kind)``, in row order."""
    groups = defaultdict(list)
    for row in rows:
        kind = f" ({row['transfer_kind'].replace('-', ' ')})" if row.get("transfer_kind") else ""
        groups[f"{row['source']} -> {row['target']}{kind}"].append(row)
    return dict(groups)


def caption(rows: list[dict]) -> str:
    """What the numbers in a table of ``rows`` mean, including which checkpoint is reported."""
    selections = sorted({r["model_selection"] for r in rows})
    seeds = sorted({r["seeds"] for r in rows})
    checkpoint = "; ".join(f"{s}: {SELECTION_TEXT.get(s, s)}" for s in selections)
    metric = rows[0].get("metric", "acc") if rows else "acc"
    what = "Target accuracy" if metric == "acc" else f"Target {METRICS[metric]} (--metric {metric}, from saved predictions)"
    return (
        f"{what} on the target test split, mean ± std over {'/'.join(map(str, seeds))} seed(s); "
        f"95% CI from Student's t over seeds (clipped to 0-100); rank per budget (shots); ★ = best per budget, {TIE_RULE}; "
        f"gain = points over scratch at the same shots; {NEG_RULE}. Reported checkpoint: {checkpoint}."
    ) + caption_note(rows)


def mark(row: dict) -> str | None:
    """``best``, ``tie`` or None: how the accuracy cell of ``row`` is highlighted."""
    return "best" if row["best"] else "tie" if row["tie_with_best"] else None


def show_selection_column(rows: list[dict]) -> bool:
    return len({r["model_selection"] for r in rows}) > 1


# -- rich --------------------------------------------------------------------------------------
def render(results: list[dict], console=None, columns: str | None = None, select: str | None = None) -> None:
    """Print one rich table per source -> target pair, then any failures."""
    from rich.console import Console
    from rich.table import Table

    if console is None:
        import sys

        console = Console(width=None if sys.stdout.isatty() else 200)
    results = annotate(results, select)  # search trials: which one --select picks per group and seed
    rows = aggregate(results)
    if not rows:
        console.print("[yellow]no successful runs to rank[/]")
    chosen = choose_columns(columns, rows)
    fit = columns is None or columns.strip() == "default"  # the default table fits the terminal
    left_out: dict[str, None] = {}
    for pair, group in pair_groups(rows).items():
        table = Table(title=pair, caption=caption(group), title_justify="left", caption_justify="left")
        ids = list(ID_COLUMNS) + (["model_selection"] if show_selection_column(group) else [])
        keys, headers = chosen, {k: COLUMNS[k].header for k in chosen}
        if fit:
            widths = {k: column_width(COLUMNS[k].header, [COLUMNS[k].text(r) + "  " for r in group]) for k in chosen}
            fixed = sum(column_width(c, [id_text(r, c) for r in group]) for c in ids)
            keys, dropped = fit_keys(chosen, widths, fixed, console.width)
            left_out.update(dict.fromkeys(dropped))
            headers = {k: wrap_header(COLUMNS[k].header, widths[k]) for k in keys}
        for col in ids:
            table.add_column(col)
        for key in keys:
            table.add_column(headers[key], justify="right" if COLUMNS[key].numeric else "left")
        for r in group:
            cells = []
            for key in keys:
                text = COLUMNS[key].text(r)
                if key == "acc" and mark(r) == "best":
                    text = f"[bold green]★ {text}[/]"
                elif key == "acc" and mark(r) == "tie":
                    text = f"[green]≈ {text}[/]"
                elif key == "gain" and r["negative_transfer"]:
                    text = f"[bold red]{text}[/]" if r["negative_transfer_clear"] else f"[red]{text}[/]"
                elif key == "parity" and not r["parity_ok"] and r["onnx_max_abs_diff"] is not None:
                    text = f"[red]{text}[/]"
                cells.append(text)
            table.add_row(*[id_text(r, c) for c in ids], *cells)
        console.print(table)
    if left_out:
        names = ", ".join(COLUMNS[k].header for k in left_out)
        console.print(f"left out to fit {console.width} columns: {names} (--columns all shows them)", markup=False)
    from tlbench.report.transferability import render_transferability

    render_transferability(results, console)  # estimator scores vs these accuracies, per target
    from tlbench.report.robust import render_robust, robust_summary

    render_robust(robust_summary(results), console)  # IQM and P(improve) when methods share several pairs
    from tlbench.report.heldout import render_heldout

    render_heldout(rows, console)  # leave-one-domain-out cells in DomainBed's table shape
    render_selection(results, console)  # search trials: every validator's pick, the oracle's, regret, Kendall tau
    failed = failures(results)
    if failed:
        table = Table(title="failed or interrupted runs", title_justify="left", style="red")
        for col in ("run_id", "cell", "status", "error"):
            table.add_column(col)
        for f in failed:
            table.add_row(f["run_id"], failure_cell(f), f["status"], (f["error"] or "")[:200])
        console.print(table)


def failure_cell(f: dict) -> str:
    return f"{f['backbone']} {f['source']}->{f['target']} {f['strategy']} {f['loss']} shots={f['shots']} seed={f['seed']}"
