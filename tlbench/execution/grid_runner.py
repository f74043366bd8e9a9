"""Runs a grid through an executor plugin: source models first, then the unfinished cells.

Whatever the executor, finished cells (valid ``ok`` result, model files intact) are skipped, a
cell another live ``tlbench run`` holds is left to it, a cell killed mid-run is simply run again,
and Ctrl-C marks the cells in flight as interrupted and says how to resume (a second Ctrl-C
exits at once with code 130, see ``interrupts``).
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tlbench.execution import claims
from tlbench.execution import worker
from tlbench.grid.identity import source_model_identity
from tlbench.execution.interrupts import GridInterrupts
from tlbench.execution.contract import ExecutorSettings, Task, WorkerConfig
from tlbench.execution.results import (
    RESULT_FILE, SCHEMA_VERSION, atomic_write_bytes, finished_run_ids, load_results, read_result, write_json_atomic,
)


def plan(specs, registry) -> tuple[list[Task], list[Task]]:
    """One source task per distinct source model the cells need, then one task per cell."""
    sources = {}
    for spec in specs:
        sources.setdefault(json.dumps(source_model_identity(spec, registry), sort_keys=True), spec)
    return [Task("source", s) for s in sources.values()], [Task("cell", s) for s in specs]


def _stub_record(spec, status: str, error: str) -> dict:
    return {"schema_version": SCHEMA_VERSION, "run_id": spec.run_id, **spec.as_dict(), "status": status, "error": error}


def _record_outside_runner(results_dir: Path, spec, status: str, error: str, details: str | None = None) -> None:
    """Write a failed/interrupted result (and ``error.log`` with ``details``) for a cell whose
    worker could not write one."""
    path = results_dir / spec.dirname / RESULT_FILE
    current = read_result(path)
    if current is not None and current["run_id"] == spec.run_id and current["status"] in ("ok", status):
        return
    if details:
        atomic_write_bytes(path.parent / "error.log", details.encode("utf-8", "replace"))
    write_json_atomic(path, _stub_record(spec, status, error))


def mark_interrupted(results_dir: Path, specs) -> int:
    """Cells whose claim was left behind (their worker stopped mid-run) become ``interrupted``."""
    marked = 0
    for spec in specs:
        claim = Path(worker.claim_path(results_dir, spec))
        if claims.left_behind(claim):
            _record_outside_runner(results_dir, spec, "interrupted", "interrupted by the user")
            claim.unlink(missing_ok=True)
            marked += 1
    return marked


def resume_command() -> str:
    return "tlbench " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "the same tlbench command"


def print_resume(console: Console, summary: str) -> None:
    """``summary`` then the resume command alone on one line, never wrapped (so it pastes as
    printed at any terminal width) and never read as rich markup."""
    console.print(summary)
    console.print(resume_command(), soft_wrap=True, markup=False, highlight=False, emoji=False)


def finished_and_todo(specs, results_dir) -> tuple[set[str], list]:
    """(the run ids finished under ``results_dir``, the specs that are not): what a run skips."""
    done = finished_run_ids(results_dir) if Path(results_dir).exists() else set()
    return done, [s for s in specs if done.isdisjoint(s.accepted_ids)]


def run_grid(specs, registry, results_dir, device: str, console: Console | None = None,
             settings: ExecutorSettings | None = None, plugins_dirs=(), render=None) -> int:
    """Run every unfinished spec; show the grid's results with ``render(results, console)`` (the
    CLI passes the rich leaderboard); exit code 0 if all ok, 1 if any failed, 130 when interrupted."""
    console = console or Console()
    settings = settings or ExecutorSettings()
    results_dir = Path(results_dir).resolve()
    done, todo = finished_and_todo(specs, results_dir)
    source_tasks, cell_tasks = plan(todo, registry)
    left = sum(claims.left_behind(worker.claim_path(results_dir, s)) for s in todo)
    for spec in specs:  # killed between writing its result and dropping its claim: tidy up
        if not done.isdisjoint(spec.accepted_ids) and claims.left_behind(worker.claim_path(results_dir, spec)):
            Path(worker.claim_path(results_dir, spec)).unlink(missing_ok=True)
    config = WorkerConfig(str(results_dir), tuple(str(Path(d).resolve()) for d in plugins_dirs), device, settings.threads)
    progress = Progress(
        TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=False,
    )
    log = lambda msg: progress.console.log(msg)  # noqa: E731
    executor_cls = registry.get("executors", settings.executor).obj
    outcomes: dict[str, dict] = {}
    with GridInterrupts() as interrupts, executor_cls(settings, config, registry, log) as executor:
        console.print(
            f"[bold]tlbench[/]: {len(specs)} runs in grid, {len(specs) - len(todo)} already finished, "
            f"{len(todo)} to run on {executor.describe()}; results in {results_dir}"
        )
        if left:
            console.print(f"{left} cells were in flight when an earlier run stopped; running them again")
        try:
            with progress:
                if todo:
                    bar = progress.add_task("source models", total=len(source_tasks))
                    for task, outcome in executor.run_tasks(source_tasks):
                        if outcome["status"] != "ok":
                            log(f"[red]source model failed[/] {task.label}: {outcome.get('error')}")
                        progress.advance(bar)
                bar = progress.add_task("grid", total=len(cell_tasks))
                for task, outcome in executor.run_tasks(cell_tasks):
                    spec = task.spec
                    outcomes[spec.run_id] = outcome
                    if outcome["status"] == "crashed":
                        _record_outside_runner(results_dir, spec, "failed", outcome["error"], outcome.get("traceback"))
                        claims_file = Path(worker.claim_path(results_dir, spec))
                        claims_file.unlink(missing_ok=True)
                    _log_outcome(log, task, outcome)
                    progress.advance(bar)
        except KeyboardInterrupt:
            interrupts.after_interrupt()
            marked = mark_interrupted(results_dir, [t.spec for t in cell_tasks if t.spec.run_id not in outcomes])
            finished = sum(o["status"] == "ok" for o in outcomes.values())
            print_resume(console, f"[yellow]interrupted[/]: {finished} cells finished now ({len(specs) - len(todo)} before), "
                         f"{marked} in flight marked interrupted, {len(todo) - len(outcomes) - marked} not started. "
                         "Results so far are saved; to resume, rerun:")
            return 130
    wanted = {run_id for s in specs for run_id in s.accepted_ids}
    if render is not None:
        render([r for r in load_results(results_dir) if r["run_id"] in wanted], console)
    failed = sum(o["status"] in ("failed", "crashed", "interrupted") for o in outcomes.values())
    claimed = [o for o in outcomes.values() if o["status"] == "claimed"]
    ok = len(specs) - len(todo) + sum(o["status"] in ("ok", "skipped") for o in outcomes.values())
    console.print(f"{ok} ok, {failed} failed; results in {results_dir}")
    if claimed:
        holders = {f"pid {(o.get('holder') or {}).get('pid')} on {(o.get('holder') or {}).get('host')}" for o in claimed}
        console.print(
            f"{len(claimed)} cells are being run by another tlbench process ({', '.join(sorted(holders))}); "
            "left to it. Rerun this command after it finishes to see them here."
        )
    return 1 if failed else 0


def _log_outcome(log, task: Task, outcome: dict) -> None:
    status = outcome["status"]
    if status == "ok":
        log(f"{task.label}: target acc {100 * outcome['target_acc']:.1f}%")
    elif status == "claimed":
        log(f"[yellow]skipped[/] {task.label}: another tlbench process is running it")
    elif status == "skipped":
        log(f"{task.label}: finished meanwhile by another process")
    else:
        log(f"[red]{status}[/] {task.spec.dirname}: {outcome.get('error')}")
