"""PNG plots of aggregated leaderboard rows (matplotlib, Agg backend, no display needed).

Every function takes the rows of ``tlbench.report.leaderboard.aggregate`` and writes one PNG file.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PLOT_FILES = {
    "shots": "accuracy_vs_shots.png",
    "latency": "accuracy_vs_latency.png",
    "gain": "best_gain_heatmap.png",
    "robust": "robust_iqm.png",
}
PLOT_TITLES = {
    "shots": "Target accuracy vs labeled target shots per class (mean ± std over seeds)",
    "latency": "Target accuracy vs ORT latency, Pareto front in red",
    "gain": "Best gain over scratch per source x target",
    "robust": "Interquartile mean of target accuracy across pairs, 95% stratified-bootstrap intervals",
}


def _shots_key(shots) -> float:
    return math.inf if shots == "all" else float(shots)


def _pair(row) -> str:
    return f"{row['source']} -> {row['target']}"


def _label(row, show_backbone: bool, show_loss: bool) -> str:
    parts = [row["strategy"]]
    if show_loss and row["loss"] != "none":
        parts.append(f"+{row['loss']}")
    label = " ".join(parts)
    return f"{row['backbone']}/{label}" if show_backbone else label


def _grid(n: int, width: float = 5.5, height: float = 4.2):
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    flat = [ax for line in axes for ax in line]
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _empty(path, message: str) -> Path:
    fig, ax = plt.subplots(figsize=(5, 2))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center")
    return _save(fig, path)


def accuracy_vs_shots(rows: list[dict], path) -> Path:
    """Target accuracy against labeled target shots per class: one line per strategy
    (and loss/backbone where they vary), a band of ± one std over seeds, one panel per pair."""
    if not rows:
        return _empty(path, "no successful runs")
    pairs = defaultdict(list)
    for row in rows:
        pairs[_pair(row)].append(row)
    show_backbone = len({r["backbone"] for r in rows}) > 1
    show_loss = len({r["loss"] for r in rows}) > 1
    fig, axes = _grid(len(pairs))
    for ax, (pair, group) in zip(axes, pairs.items()):
        shots = sorted({r["shots"] for r in group}, key=_shots_key)
        position = {s: i for i, s in enumerate(shots)}
        lines = defaultdict(list)
        for row in group:
            lines[_label(row, show_backbone, show_loss)].append(row)
        for label, points in sorted(lines.items()):
            points.sort(key=lambda r: _shots_key(r["shots"]))
            x = [position[r["shots"]] for r in points]
            mean = [100 * r["target_acc"] for r in points]
            std = [100 * (r.get("target_acc_std") or 0.0) for r in points]
            style = {"linestyle": "--", "color": "black"} if label.split(" ")[0].split("/")[-1] == "scratch" else {}
            (line,) = ax.plot(x, mean, marker="o", label=label, **style)
            ax.fill_between(x, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                            color=line.get_color(), alpha=0.15, linewidth=0)
        ax.set_xticks(range(len(shots)), [str(s) for s in shots])
        ax.set_xlabel("labeled target examples per class (shots)")
        ax.set_ylabel("target accuracy % (mean ± std over seeds)")
        ax.set_title(pair)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points (latency, accuracy) no other point beats on both (lower latency,
    higher accuracy), ordered by latency."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best_acc = [], -math.inf
    for i in order:
        if points[i][1] > best_acc:
            front.append(i)
            best_acc = points[i][1]
    return front


def accuracy_vs_latency(rows: list[dict], path) -> Path:
    """Target accuracy against onnxruntime batch-1 latency, one panel per pair and shots budget,
    with the Pareto front (nothing both faster and more accurate) drawn and its points labelled."""
    rows = [r for r in rows if r.get("ort_latency_ms") is not None]
    if not rows:
        return _empty(path, "no runs with an ORT latency")
    panels = defaultdict(list)
    for row in rows:
        panels[(_pair(row), row["shots"])].append(row)
    keys = sorted(panels, key=lambda k: (k[0], _shots_key(k[1])))
    show_backbone = len({r["backbone"] for r in rows}) > 1
    show_loss = len({r["loss"] for r in rows}) > 1
    strategies = sorted({r["strategy"] for r in rows})
    colors = {s: f"C{i % 10}" for i, s in enumerate(strategies)}
    fig, axes = _grid(len(keys))
    for ax, key in zip(axes, keys):
        group = panels[key]
        points = [(r["ort_latency_ms"], 100 * r["target_acc"]) for r in group]
        for strategy in strategies:
            xs = [p for p, r in zip(points, group) if r["strategy"] == strategy]
            if xs:
                ax.scatter([p[0] for p in xs], [p[1] for p in xs], color=colors[strategy], label=strategy, s=36, zorder=3)
        front = pareto_front(points)
        ax.plot([points[i][0] for i in front], [points[i][1] for i in front], drawstyle="steps-post",
                color="crimson", linewidth=1.5, label="Pareto front", zorder=2)
        for i in front:
            ax.annotate(_label(group[i], show_backbone, show_loss), points[i], textcoords="offset points",
                        xytext=(4, 4), fontsize=7, color="crimson")
        ax.set_xlabel("ORT latency, batch 1 (ms)")
        ax.set_ylabel("target accuracy % (mean over seeds)")
        ax.set_title(f"{key[0]}, shots={key[1]}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, path)


def best_gain_heatmap(rows: list[dict], path) -> Path:
    """Source x target grid of the best gain over scratch (percentage points) any non-scratch
    configuration reached on that pair, annotated with who reached it; blank where not run."""
    import numpy as np

    candidates = [r for r in rows if r.get("gain_vs_scratch") is not None and r["strategy"] != "scratch"]
    if not candidates:
        return _empty(path, "no gains over scratch to show (runs need a scratch baseline)")
    sources = sorted({r["source"] for r in candidates})
    targets = sorted({r["target"] for r in candidates})
    best = {}
    for row in candidates:
        key = (row["source"], row["target"])
        if key not in best or row["gain_vs_scratch"] > best[key]["gain_vs_scratch"]:
            best[key] = row
    grid = np.full((len(sources), len(targets)), np.nan)
    for (source, target), row in best.items():
        grid[sources.index(source), targets.index(target)] = 100 * row["gain_vs_scratch"]
    limit = max(1.0, float(np.nanmax(np.abs(grid))))
    fig, ax = plt.subplots(figsize=(2.6 + 2.2 * len(targets), 1.8 + 1.3 * len(sources)))
    image = ax.imshow(grid, cmap="RdYlGn", vmin=-limit, vmax=limit)
    for (source, target), row in best.items():
        text = f"{100 * row['gain_vs_scratch']:+.1f}\n{row['strategy']}"
        if row["loss"] != "none":
            text += f"+{row['loss']}"
        text += f"\n{row['backbone']}, shots={row['shots']}"
        ax.text(targets.index(target), sources.index(source), text, ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(targets)), targets, rotation=20, ha="right")
    ax.set_yticks(range(len(sources)), sources)
    ax.set_xlabel("target")
    ax.set_ylabel("source")
    ax.set_title("best gain over scratch (points)")
    fig.colorbar(image, ax=ax, label="gain over scratch (points)")
    return _save(fig, path)


def robust_iqm(results: list[dict], path) -> Path:
    """IQM per method with its interval (tlbench.report.robust), one bar per method."""
    from tlbench.report.robust import robust_summary

    summary = robust_summary(results or [])
    if summary is None:
        return _empty(path, "no robust aggregate: fewer than two methods share two or more tasks")
    methods = [row["method"] for row in summary["rows"]][::-1]
    values = [100 * row["iqm"] for row in summary["rows"]][::-1]
    errors = [[100 * (row["iqm"] - row["iqm_ci"][0]) for row in summary["rows"]][::-1],
              [100 * (row["iqm_ci"][1] - row["iqm"]) for row in summary["rows"]][::-1]]
    fig, ax = plt.subplots(figsize=(6.5, 0.5 * len(methods) + 1.6))
    ax.barh(methods, values, xerr=errors, color="#4c72b0", capsize=3)
    ax.set_xlabel("IQM of target accuracy (%)")
    ax.set_title(f"{len(summary['tasks'])} tasks x {len(summary['seeds'])} seed(s)"
                 + (" (fewer than 3 seeds)" if summary["warning"] else ""), fontsize=9)
    return _save(fig, path)


def write_plots(rows: list[dict], target, results: list[dict] | None = None) -> list[Path]:
    """``target`` ending in ``.png``: the accuracy-vs-shots plot there; otherwise a directory
    that receives every plot in ``PLOT_FILES`` (the robust one from the unaggregated ``results``)."""
    target = Path(target)
    if target.suffix.lower() == ".png":
        return [accuracy_vs_shots(rows, target)]
    makers = {"shots": accuracy_vs_shots, "latency": accuracy_vs_latency, "gain": best_gain_heatmap}
    return ([make(rows, target / PLOT_FILES[kind]) for kind, make in makers.items()]
            + [robust_iqm(results or [], target / PLOT_FILES["robust"])])
