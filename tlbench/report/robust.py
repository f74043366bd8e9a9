"""Robust aggregates across pairs and seeds (Agarwal et al., 2021, "Deep reinforcement learning at
the edge of the statistical precipice"): for methods compared on several tasks, the interquartile
mean (IQM) of their scores with a stratified-bootstrap 95 % interval, and the probability that
each method improves on a baseline, with its interval.

A *method* is a strategy/loss pair; a *task* is one (backbone, source, target, shots); a *run* is
one seed. Only tasks every method ran, at the seeds they all share, enter, so each method's
scores form a runs x tasks matrix (how the stratified bootstrap wants them: runs are resampled
within each task). rliable, the reference implementation, installs here (1.2.0) but does not
import: its dependency arch 7.2.0 calls a pandas helper whose signature changed in pandas 3,
which this project pins. These few functions follow its definitions (scipy's 25 % trimmed mean;
the Mann-Whitney estimate of P(X > Y) per task, averaged over tasks) and are tested against hand
computations.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

REPS = 2000
MIN_SEEDS = 3


def _iqm(batch: np.ndarray) -> np.ndarray:
    """IQM of each leading-axis slice of ``batch`` (reps, runs, tasks)."""
    flat = np.sort(batch.reshape(batch.shape[0], -1), axis=1)
    cut = int(0.25 * flat.shape[1])
    return flat[:, cut:flat.shape[1] - cut].mean(axis=1)


def _improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y) + P(X = Y) / 2 per leading-axis slice of ``x`` (reps, runs, tasks) and ``y``."""
    a, b = x[:, :, None, :], y[:, None, :, :]
    return ((a > b) + 0.5 * (a == b)).mean(axis=(1, 2)).mean(axis=1)


def iqm(scores: np.ndarray) -> float:
    """The mean of the middle 50 % of all scores (25 % cut from each end, as scipy's trim_mean)."""
    return float(_iqm(np.asarray(scores, dtype=float).reshape(1, -1, 1))[0])


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y) + P(X = Y) / 2 for a run of ``x`` against a run of ``y`` on the same task,
    averaged over tasks (columns)."""
    return float(_improvement(np.asarray(x, dtype=float)[None], np.asarray(y, dtype=float)[None])[0])


STATISTICS = {"iqm": _iqm, "improvement": _improvement}


def stratified_bootstrap(statistic: str, matrices: list[np.ndarray], reps: int = REPS, seed: int = 0) -> tuple[float, float]:
    """95 % percentile interval of ``statistic`` (``iqm`` or ``improvement``) when each matrix's
    runs are resampled with replacement within every task (column), independently per matrix;
    all ``reps`` resamples are drawn and computed at once."""
    rng = np.random.default_rng(seed)
    resampled = []
    for m in matrices:
        m = np.asarray(m, dtype=float)
        rows = rng.integers(0, m.shape[0], size=(reps, *m.shape))  # per task, runs drawn with replacement
        resampled.append(np.take_along_axis(np.broadcast_to(m, (reps, *m.shape)), rows, axis=1))
    low, high = np.percentile(STATISTICS[statistic](*resampled), [2.5, 97.5])
    return float(low), float(high)


def score_matrices(results: list[dict]) -> tuple[dict[str, np.ndarray], list[tuple], list[int]]:
    """({method: runs x tasks target accuracies}, tasks, seeds) over the tasks and seeds shared by every method."""
    cells: dict[str, dict[tuple, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for r in results:
        if r.get("status") == "ok" and r.get("target_acc") is not None and not r.get("trial"):
            task = (r["backbone"], r["source"], r["target"], str(r["shots"]))
            cells[f"{r['strategy']}/{r['loss']}"][task][int(r["seed"])] = float(r["target_acc"])
    if len(cells) < 2:
        return {}, [], []
    tasks = sorted(set.intersection(*(set(by_task) for by_task in cells.values())))
    seeds = sorted(set.intersection(*(set(s) for by_task in cells.values() for t, s in by_task.items() if t in tasks))) \
        if tasks else []
    if len(tasks) < 2 or not seeds:
        return {}, [], []
    return ({m: np.array([[by_task[t][s] for t in tasks] for s in seeds]) for m, by_task in sorted(cells.items())},
            tasks, seeds)


def robust_summary(results: list[dict], baseline: str | None = None, reps: int = REPS) -> dict | None:
    """The section: per method IQM and interval, probability of improvement over ``baseline``
    (default ``finetune/none`` when present, else the first method), and a seed-count warning.
    None when fewer than two methods share at least two tasks."""
    scores, tasks, seeds = score_matrices(results)
    if not scores:
        return None
    if baseline is None:
        baseline = "finetune/none" if "finetune/none" in scores else next(iter(scores))
    rows = []
    for method, matrix in scores.items():
        row = {"method": method, "iqm": iqm(matrix), "iqm_ci": stratified_bootstrap("iqm", [matrix], reps)}
        if method != baseline and baseline in scores:
            row["p_improve"] = probability_of_improvement(matrix, scores[baseline])
            row["p_improve_ci"] = stratified_bootstrap("improvement", [matrix, scores[baseline]], reps)
        rows.append(row)
    rows.sort(key=lambda row: -row["iqm"])
    warning = (f"{len(seeds)} seed(s) per task: fewer than {MIN_SEEDS}, so these intervals rest on too few runs to "
               "support a claim" if len(seeds) < MIN_SEEDS else None)
    return {"baseline": baseline if baseline in scores else None, "tasks": [" ".join(t) for t in tasks],
            "seeds": seeds, "rows": rows, "warning": warning, "reps": reps}


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def robust_markdown(summary: dict | None) -> list[str]:
    """The section as Markdown lines (empty when there is no comparison to make)."""
    if summary is None:
        return []
    lines = ["## Robust aggregates across pairs", "",
             f"_Interquartile mean of target accuracy over {len(summary['tasks'])} tasks x {len(summary['seeds'])} "
             f"seed(s), 95 % stratified-bootstrap intervals ({summary['reps']} resamples); P(improve) = probability "
             f"that a run of the method beats a run of {summary['baseline']} on the same task (Agarwal et al., 2021)._",
             ""]
    if summary["warning"]:
        lines += [f"**Warning: {summary['warning']}.**", ""]
    lines += ["| method | IQM acc % | 95% CI % | P(improve over baseline) | 95% CI |", "|---|---:|---:|---:|---:|"]
    for row in summary["rows"]:
        low, high = row["iqm_ci"]
        p = row.get("p_improve")
        p_text = "baseline" if row["method"] == summary["baseline"] else ("-" if p is None else f"{p:.2f}")
        p_ci = "-" if p is None else f"[{row['p_improve_ci'][0]:.2f}, {row['p_improve_ci'][1]:.2f}]"
        lines.append(f"| {row['method']} | {_pct(row['iqm'])} | [{_pct(low)}, {_pct(high)}] | {p_text} | {p_ci} |")
    return lines


def render_robust(summary: dict | None, console) -> None:
    """The section as a rich table."""
    if summary is None:
        return
    from rich.table import Table

    table = Table(title="robust aggregates across pairs (IQM, stratified bootstrap)", title_justify="left",
                  caption=f"{len(summary['tasks'])} tasks x {len(summary['seeds'])} seed(s); P(improve) over "
                          f"{summary['baseline']}" + (f". Warning: {summary['warning']}." if summary["warning"] else ""),
                  caption_justify="left")
    for header in ("method", "IQM acc %", "95% CI %", "P(improve)", "95% CI"):
        table.add_column(header, justify="left" if header == "method" else "right")
    for row in summary["rows"]:
        p = row.get("p_improve")
        table.add_row(row["method"], _pct(row["iqm"]), f"[{_pct(row['iqm_ci'][0])}, {_pct(row['iqm_ci'][1])}]",
                      "baseline" if row["method"] == summary["baseline"] else ("-" if p is None else f"{p:.2f}"),
                      "-" if p is None else f"[{row['p_improve_ci'][0]:.2f}, {row['p_improve_ci'][1]:.2f}]")
    console.print(table)
