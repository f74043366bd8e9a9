"""Runs a list of RunSpecs in this process with rich progress; finished runs are skipped."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tlbench import leaderboard
from tlbench.results import finished_run_ids, load_results


def run_grid(specs, registry, results_dir, device: str, console: Console | None = None) -> int:
    """Run every unfinished spec; print the leaderboard; exit code 0 if all ok, 1 if any failed."""
    from tlbench.runner import Runner

    console = console or Console()
    results_dir = Path(results_dir)
    done = finished_run_ids(results_dir) if results_dir.exists() else set()
    todo = [s for s in specs if s.run_id not in done]
    console.print(
        f"[bold]tlbench[/]: {len(specs)} runs in grid, {len(specs) - len(todo)} already finished, "
        f"{len(todo)} to run on {device}; results in {results_dir}"
    )
    progress = Progress(
        TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=False,
    )
    runner = Runner(registry, results_dir, device, log=lambda msg: progress.console.log(msg))
    failed = 0
    try:
        with progress:
            task = progress.add_task("grid", total=len(todo))
            for spec in todo:
                progress.update(task, description=f"{spec.backbone} {spec.source}->{spec.target} {spec.strategy}/{spec.loss} shots={spec.shots} seed={spec.seed}")
                record = runner.run(spec)
                if record["status"] != "ok":
                    failed += 1
                    progress.console.log(f"[red]failed[/] {spec.dirname}: {record['error']}")
                else:
                    progress.console.log(
                        f"{spec.backbone} {spec.source}->{spec.target} {spec.strategy}/{spec.loss} shots={spec.shots} "
                        f"seed={spec.seed}: target acc {100 * record['target_acc']:.1f}%"
                    )
                progress.advance(task)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: finished runs are saved; rerun the same command to resume.")
        raise
    wanted = {s.run_id for s in specs}
    leaderboard.render([r for r in load_results(results_dir) if r["run_id"] in wanted], console)
    console.print(f"{len(specs) - failed} ok, {failed} failed; results in {results_dir}")
    return 1 if failed else 0
