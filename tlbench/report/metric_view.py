"""``tlbench leaderboard --metric NAME``: the leaderboard ranked by another metric of the target
test split, recomputed from each run's saved predictions (tlbench.execution.predictions)."""

from __future__ import annotations

from pathlib import Path

from tlbench.execution.predictions import load_predictions, metrics_of
from tlbench.execution.results import RESULT_FILE
from tlbench.plugin.errors import UserError, closest_first
from tlbench.utils.metrics import METRICS


def check_metric(name: str) -> str:
    if name not in METRICS:
        raise UserError(f"--metric {name!r} is not one of {', '.join(closest_first(name, METRICS))}")
    return name


def _run_dirs(directory: Path) -> dict[str, Path]:
    """run id -> its folder; a run folder's name ends with ``__<run id>`` (RunSpec.stored_dirnames)."""
    out = {}
    for path in sorted(Path(directory).glob(f"*/{RESULT_FILE}")):
        out.setdefault(path.parent.name.rsplit("__", 1)[-1], path.parent)
    return out


def target_metric(result: dict, run_dir: Path | None, metric: str) -> float | None:
    """``metric`` of a run's target test split: recomputed from its predictions file when there is
    one, else the value its result recorded, else None (results from before predictions were saved)."""
    arrays = load_predictions(run_dir) if run_dir is not None else None
    if arrays is not None and "target_label" in arrays:
        classes = len(result.get("target_classes") or []) or None
        return metrics_of(arrays, {"target": classes})["target"][metric]
    return ((result.get("metrics") or {}).get("target") or {}).get(metric)


def with_metric(results: list[dict], directory, metric: str) -> tuple[list[dict], int]:
    """(the results with ``target_acc`` replaced by ``metric`` and tagged with it, how many ok
    results had no way to compute it and were left out). ``acc`` returns them unchanged."""
    if metric == "acc":
        return results, 0
    dirs = _run_dirs(Path(directory))
    out, missing = [], 0
    for result in results:
        if result.get("status") != "ok":
            out.append(result)
            continue
        value = target_metric(result, dirs.get(result.get("run_id")), metric)
        if value is None:
            missing += 1
            continue
        out.append({**result, "target_acc": value, "_metric": metric})
    return out, missing
