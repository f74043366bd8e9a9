"""PNG plots of aggregated leaderboard rows (matplotlib, Agg backend, no display needed).

Every function takes the rows of ``tlbench.leaderboard.aggregate`` and writes one PNG file.
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


def write_plots(rows: list[dict], target) -> list[Path]:
    """``target`` ending in ``.png``: the accuracy-vs-shots plot there; otherwise a directory
    that receives every plot in ``PLOT_FILES``."""
    target = Path(target)
    if target.suffix.lower() == ".png":
        return [accuracy_vs_shots(rows, target)]
    makers = {"shots": accuracy_vs_shots, "latency": globals().get("accuracy_vs_latency"), "gain": globals().get("best_gain_heatmap")}
    return [make(rows, target / PLOT_FILES[kind]) for kind, make in makers.items() if make is not None]
