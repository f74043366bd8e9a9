"""What one task does, wherever an executor runs it: claim, run, record, release.

Worker processes (``processes``, ``ray``) rebuild the registry from the plugin directories once
per process and keep one Runner, so datasets are loaded once per worker.
"""

from __future__ import annotations

import os
import socket

from tlbench.execution import claims
from tlbench.execution.contract import Task, WorkerConfig
from tlbench.execution.results import RESULT_FILE, artifacts_intact, read_result

_STATE: dict = {}


def install(config: WorkerConfig, registry, log=None) -> None:
    """Use an already loaded registry in this process (the ``local`` executor)."""
    _STATE.clear()
    _STATE.update(config=config, registry=registry, log=log or (lambda msg: None))


def _runner(config: WorkerConfig):
    from tlbench.execution.runner import Runner

    if _STATE.get("config") != config or "registry" not in _STATE:
        from tlbench.plugin.discovery import load_plugins

        _STATE.clear()
        _STATE.update(config=config, registry=load_plugins(list(config.plugins_dirs))[1], log=lambda msg: None)
    if "runner" not in _STATE:
        _STATE["runner"] = Runner(_STATE["registry"], config.results_dir, config.device, log=_STATE["log"])
    return _STATE["runner"]


def set_threads(threads: int | None) -> None:
    """Fix torch's intra-op CPU threads (same count everywhere -> same floating-point sums)."""
    if threads:
        import torch

        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def claim_path(results_dir, spec) -> str:
    return os.path.join(str(results_dir), spec.dirname, claims.CLAIM_FILE)


def finished(run_dir, run_ids) -> bool:
    """Whether ``run_dir`` holds an intact ``ok`` result carrying one of ``run_ids``."""
    result = read_result(os.path.join(run_dir, RESULT_FILE))
    return bool(result and result["run_id"] in run_ids and result["status"] == "ok" and artifacts_intact(run_dir, result))


def execute(task: Task, config: WorkerConfig) -> dict:
    """Run ``task``; returns a small outcome dict (``status`` and, for cells, accuracy/error)."""
    set_threads(config.threads)
    runner = _runner(config)
    where = {"pid": os.getpid(), "host": socket.gethostname(), "device": config.device}
    if task.kind == "source":
        try:
            info = runner.prepare_source(task.spec)
        except Exception as exc:  # the cells that need it fail on their own, with this error
            return {"status": "failed", "error": f"{type(exc).__name__}: {exc}", **where}
        return {"status": "ok", **info, **where}
    spec = task.spec
    run_dir = str(runner.run_dir(spec))
    claim = None
    try:
        claim = claims.try_claim(claim_path(config.results_dir, spec))
        if claim is None:
            return {"status": "claimed", "holder": claims.holder(claim_path(config.results_dir, spec)), **where}
        if finished(run_dir, spec.accepted_ids):  # another process finished it after this grid was planned
            claim.release()
            return {"status": "skipped", **where}
        record = runner.run(spec)
    except BaseException:
        if claim is not None:
            claim.release(remove=False)  # left behind: tells the core this cell was in flight
        raise
    claim.release()
    return {
        "status": record["status"],
        "error": record.get("error"),
        "target_acc": record.get("target_acc"),
        **where,
    }
