"""Does a grid's ranking survive a bigger budget? Compare two finished runs of one grid.

    python benchmarks/budget_agreement.py BASE_RUNS BIGGER_RUNS [--out results/default-grid/budget_agreement.md]

Cells are matched by (backbone, source, target, strategy, loss, shots); each side's cell mean over
seeds is ranked and Kendall's tau (scipy) between the two rankings is reported, with per-cell
figures: accuracy at both budgets, whether the base run's supervised training loss had flattened
(tlbench.training.convergence: the last quarter of the run added at most 10% of its decrease, on
window means; or the loss is below 0.05), and whether it sits at chance (within 5 points of 1 / number of classes).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from scipy.stats import kendalltau

from tlbench.training.convergence import has_flattened, supervised_trace

KEY = ("backbone", "source", "target", "strategy", "loss", "shots")


def cells(runs: Path) -> dict[tuple, list[dict]]:
    """ok results of ``runs`` grouped by cell."""
    out = defaultdict(list)
    for path in sorted(runs.glob("*/result.json")):
        r = json.loads(path.read_text())
        if r.get("status") == "ok":
            out[tuple(r[k] for k in KEY)].append(r)
    return out


def flattened(result: dict) -> bool | None:
    """Has the run's supervised training loss plateaued (tlbench.training.convergence)?"""
    return has_flattened(supervised_trace(result.get("term_trace"), result.get("loss_trace")))


def last_quarter_drop(result: dict) -> float | None:
    """Relative fall of the supervised loss from the third quarter's mean to the last quarter's
    (0.2 = still 20% lower at the end): a stricter reading than the plateau test for losses that
    approach zero slowly."""
    values = supervised_trace(result.get("term_trace"), result.get("loss_trace"))
    if len(values) < 8:
        return None
    q = len(values) // 4
    last, before = statistics.mean(values[-q:]), statistics.mean(values[-2 * q:-q])
    return (before - last) / before if before > 0 else 0.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path)
    parser.add_argument("bigger", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--classes", type=int, default=10, help="classes of the target task (chance = 1/classes)")
    args = parser.parse_args(argv)
    base, bigger = cells(args.base), cells(args.bigger)
    common = sorted(set(base) & set(bigger), key=str)
    if len(common) < 2:
        print(f"only {len(common)} cells in common between {args.base} and {args.bigger}", file=sys.stderr)
        return 2
    mean = lambda runs: statistics.mean(r["target_acc"] for r in runs)  # noqa: E731
    a, b = [mean(base[c]) for c in common], [mean(bigger[c]) for c in common]
    tau = kendalltau(a, b).statistic
    chance = 1.0 / args.classes
    rows, flat_all, at_chance = [], [], []
    for cell, x, y in zip(common, a, b):
        flat = [flattened(r) for r in base[cell]]
        flat_all += [f for f in flat if f is not None]
        near = abs(x - chance) <= 0.05
        at_chance.append(near)
        drops = [d for d in (last_quarter_drop(r) for r in base[cell]) if d is not None]
        drop = f"{100 * max(drops):.0f}%" if drops else "-"
        rows.append(f"| {' | '.join(str(v) for v in cell)} | {100 * x:.1f} | {100 * y:.1f} | "
                    f"{'yes' if all(flat) else 'NO'} | {drop} | {'AT CHANCE' if near else 'no'} |")
    lines = [
        f"Kendall tau over {len(common)} cell means, {args.base} vs {args.bigger}: **{tau:.3f}**",
        f"Training loss flattened in {sum(flat_all)}/{len(flat_all)} base runs; cells at chance: {sum(at_chance)}.",
        "",
        "| " + " | ".join(KEY) + " | base acc % | bigger acc % | loss flattened | last-quarter fall | at chance |",
        "|" + "---|" * (len(KEY) + 5),
        *rows,
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
