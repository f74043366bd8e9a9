"""Aggregate stored results (mean ± std over seeds, gain over scratch) and render or export them."""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections import defaultdict

from rich.console import Console
from rich.table import Table

BASELINE = "scratch"
GROUP_KEYS = ("backbone", "strategy", "loss", "shots")
PARITY_ATOL = 1e-3


def _shots_order(shots) -> float:
    return float("inf") if shots == "all" else float(shots)


def _mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def aggregate(results: list[dict]) -> list[dict]:
    """One row per (source, target, backbone, strategy, loss, shots) over the ``ok`` seeds."""
    cells = defaultdict(list)
    for r in results:
        if r.get("status") == "ok":
            cells[(r["source"], r["target"]) + tuple(r[k] for k in GROUP_KEYS)].append(r)
    rows = []
    for key, runs in cells.items():
        acc, acc_std = _mean_std([r.get("target_acc") for r in runs])
        src_acc, _ = _mean_std([r.get("source_acc") for r in runs])
        diffs = [r.get("onnx_max_abs_diff") for r in runs if r.get("onnx_max_abs_diff") is not None]
        agree = [r.get("onnx_top1_agreement") for r in runs if r.get("onnx_top1_agreement") is not None]
        row = dict(zip(("source", "target") + GROUP_KEYS, key))
        row.update(
            seeds=len(runs),
            target_acc=acc,
            target_acc_std=acc_std,
            source_acc=src_acc,
            train_seconds=_mean_std([r.get("train_seconds") for r in runs])[0],
            train_samples_per_s=_mean_std([r.get("train_samples_per_s") for r in runs])[0],
            torch_latency_ms=_mean_std([r.get("torch_latency_ms") for r in runs])[0],
            ort_latency_ms=_mean_std([r.get("ort_latency_ms") for r in runs])[0],
            onnx_max_abs_diff=max(diffs) if diffs else None,
            onnx_top1_agreement=min(agree) if agree else None,
        )
        row["parity_ok"] = bool(diffs) and row["onnx_max_abs_diff"] < PARITY_ATOL and row["onnx_top1_agreement"] == 1.0
        rows.append(row)
    by_baseline = {
        (r["source"], r["target"], r["backbone"], r["loss"], r["shots"]): r["target_acc"]
        for r in rows
        if r["strategy"] == BASELINE
    }
    for row in rows:
        base = by_baseline.get((row["source"], row["target"], row["backbone"], row["loss"], row["shots"]))
        if base is None:
            base = by_baseline.get((row["source"], row["target"], row["backbone"], "none", row["shots"]))
        row["gain_vs_scratch"] = None if base is None or row["target_acc"] is None else row["target_acc"] - base
        row["negative_transfer"] = row["gain_vs_scratch"] is not None and row["gain_vs_scratch"] < 0
    rows.sort(key=lambda r: (r["source"], r["target"], _shots_order(r["shots"]), -(r["target_acc"] or 0.0)))
    return rows


def failures(results: list[dict]) -> list[dict]:
    """Runs that did not finish ok, with their error."""
    keep = ("run_id", "backbone", "source", "target", "strategy", "loss", "shots", "seed", "status", "error")
    return [{k: r.get(k) for k in keep} for r in results if r.get("status") != "ok"]


def _fmt(value, digits=3, pct=False):
    if value is None:
        return "-"
    return f"{100 * value:.1f}" if pct else f"{value:.{digits}f}"


def _pair_groups(rows):
    groups = defaultdict(list)
    for row in rows:
        groups[f"{row['source']} -> {row['target']}"].append(row)
    return groups


def render(results: list[dict], console: Console | None = None) -> None:
    """Print one rich table per source -> target pair, then any failures."""
    console = console or Console()
    rows = aggregate(results)
    if not rows:
        console.print("[yellow]no successful runs to rank[/]")
    for pair, group in _pair_groups(rows).items():
        table = Table(title=f"{pair}  (target accuracy %, mean ± std over seeds)", title_justify="left")
        for col in ("backbone", "strategy", "loss", "shots", "seeds"):
            table.add_column(col)
        for col in ("target acc", "gain vs scratch", "source acc", "train s", "torch ms", "ORT ms", "ONNX parity"):
            table.add_column(col, justify="right")
        best = max((r["target_acc"] or 0.0) for r in group)
        for r in group:
            acc = f"{_fmt(r['target_acc'], pct=True)} ± {_fmt(r['target_acc_std'], pct=True)}"
            if r["target_acc"] == best:
                acc = f"[bold green]{acc}[/]"
            gain = r["gain_vs_scratch"]
            gain_text = "-" if gain is None else f"{100 * gain:+.1f}"
            if r["negative_transfer"]:
                gain_text = f"[bold red]{gain_text} neg[/]"
            parity = (
                f"ok ({r['onnx_max_abs_diff']:.1e})" if r["parity_ok"] else f"[red]FAIL ({_fmt(r['onnx_max_abs_diff'], 4)})[/]"
            )
            table.add_row(
                r["backbone"], r["strategy"], r["loss"], str(r["shots"]), str(r["seeds"]), acc, gain_text,
                _fmt(r["source_acc"], pct=True), _fmt(r["train_seconds"], 1), _fmt(r["torch_latency_ms"], 2),
                _fmt(r["ort_latency_ms"], 2), parity,
            )
        console.print(table)
    failed = failures(results)
    if failed:
        table = Table(title="failed or interrupted runs", title_justify="left", style="red")
        for col in ("run_id", "cell", "status", "error"):
            table.add_column(col)
        for f in failed:
            cell = f"{f['backbone']} {f['source']}->{f['target']} {f['strategy']} {f['loss']} shots={f['shots']} seed={f['seed']}"
            table.add_row(f["run_id"], cell, f["status"], (f["error"] or "")[:200])
        console.print(table)


EXPORT_COLUMNS = (
    "source", "target", "backbone", "strategy", "loss", "shots", "seeds", "target_acc", "target_acc_std",
    "gain_vs_scratch", "negative_transfer", "source_acc", "train_seconds", "train_samples_per_s",
    "torch_latency_ms", "ort_latency_ms", "onnx_max_abs_diff", "onnx_top1_agreement", "parity_ok",
)


def export(results: list[dict], fmt: str) -> str:
    """The aggregated leaderboard as ``csv``, ``md`` or ``json`` text."""
    rows = aggregate(results)
    if fmt == "json":
        return json.dumps({"leaderboard": rows, "failures": failures(results)}, indent=2) + "\n"
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=EXPORT_COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue()
    if fmt == "md":
        lines = []
        for pair, group in _pair_groups(rows).items():
            lines += [f"### {pair}", "", "| backbone | strategy | loss | shots | seeds | target acc % | gain vs scratch | source acc % | train s | torch ms | ORT ms | ONNX max abs diff | top-1 agree |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
            for r in group:
                gain = "-" if r["gain_vs_scratch"] is None else f"{100 * r['gain_vs_scratch']:+.1f}" + (" **neg**" if r["negative_transfer"] else "")
                lines.append(
                    f"| {r['backbone']} | {r['strategy']} | {r['loss']} | {r['shots']} | {r['seeds']} | "
                    f"{_fmt(r['target_acc'], pct=True)} ± {_fmt(r['target_acc_std'], pct=True)} | {gain} | "
                    f"{_fmt(r['source_acc'], pct=True)} | {_fmt(r['train_seconds'], 1)} | {_fmt(r['torch_latency_ms'], 2)} | "
                    f"{_fmt(r['ort_latency_ms'], 2)} | {_fmt(r['onnx_max_abs_diff'], 6)} | {_fmt(r['onnx_top1_agreement'], 3)} |"
                )
            lines.append("")
        failed = failures(results)
        if failed:
            lines += ["### failed runs", "", "| run_id | cell | status | error |", "|---|---|---|---|"]
            for f in failed:
                lines.append(f"| {f['run_id']} | {f['backbone']} {f['source']}->{f['target']} {f['strategy']} {f['loss']} shots={f['shots']} seed={f['seed']} | {f['status']} | {(f['error'] or '').replace('|', '/')} |")
        return "\n".join(lines) + "\n"
    raise ValueError(f"unknown format {fmt!r}")
