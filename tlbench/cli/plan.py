"""``tlbench run --dry-run``: the grid validated (names, options, datasets and their files, each
backbone built once) and described, with nothing trained and nothing written."""

from __future__ import annotations

from pathlib import Path


def describe_plan(specs, registry, results_dir: str, device: str) -> str:
    """One paragraph: cells, how many are finished, source models to train, pairs, device."""
    from tlbench.execution.grid_runner import finished_and_todo, plan

    _, todo = finished_and_todo(specs, Path(results_dir))
    sources, cells = plan(todo, registry)
    pairs = sorted({f"{s.source}->{s.target}" for s in specs})
    shown = ", ".join(pairs[:4]) + (f" and {len(pairs) - 4} more" if len(pairs) > 4 else "")
    return (f"dry run: {len(specs)} runs in grid, {len(specs) - len(todo)} already finished, {len(cells)} to run "
            f"after {len(sources)} source model(s); pairs {shown}; results in {results_dir}; device {device}. "
            "Valid: every name, option and dataset domain checked; nothing trained or written.")
