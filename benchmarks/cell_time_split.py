"""Benchmark: where a cell's wall time goes, training vs everything after it, per cell of a grid.

Runs the grid (default: the built-in default grid) in-process into a fresh results directory:
source models first (timed apart, as `tlbench run` does), then each cell timed around
``Runner.run``. For each cell: wall seconds, training seconds (``train_seconds``), the
post-training steps the result records in ``deploy_seconds`` (torch latency, reference logits
when not reused, input statistics, export, verify, INT8, onnxruntime latency, second runtime),
the evaluation (``evaluation.seconds``: test accuracies and the capped batch-statistics
diagnostic) and the rest (validator scores, transferability scores, loading, writing). Goal:
post-training work <= 30 % of a cell's wall time. The machine's load average is recorded per
cell: on a shared machine compare shares, not seconds.
Usage: python benchmarks/cell_time_split.py [--quick] [GRID.toml]
  --quick: 2 cells, 5 steps, output under /tmp (checks that the script runs).
"""

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import common  # noqa: E402
from common import machine, write  # noqa: E402

from tlbench.execution.runner import Runner  # noqa: E402
from tlbench.grid import default_grid_path, expand, read_grid_file  # noqa: E402
from tlbench.plugin.discovery import load_plugins  # noqa: E402

QUICK = "--quick" in sys.argv


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    config = read_grid_file(args[0] if args else default_grid_path())
    if QUICK:
        config.update(backbone=["smallcnn"], strategy=["finetune"], loss=["none", "dann"])
        config["train"] = {**config.get("train", {}), "steps": 5, "source_epochs": 0.2}
        common.OUT = Path(tempfile.gettempdir()) / "tlbench-benchmarks-quick"
    registry = load_plugins([])[1]
    specs = expand(config, registry)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        runner = Runner(registry, tmp, "cpu", log=lambda message: None)
        start = time.perf_counter()
        for spec in specs:
            runner.prepare_source(spec)
        source_seconds = time.perf_counter() - start
        for spec in specs:
            start = time.perf_counter()
            result = runner.run(spec)
            wall = time.perf_counter() - start
            deploy = result.get("deploy_seconds") or {}
            after = sum(deploy.values())
            evaluation = (result.get("evaluation") or {}).get("seconds") or 0.0
            rows.append({"cell": f"{spec.backbone} {spec.strategy} {spec.loss}", "status": result["status"],
                         "wall_s": round(wall, 3), "train_s": result.get("train_seconds"), "deploy_s": round(after, 3),
                         "eval_s": round(evaluation, 3),
                         "other_s": round(wall - after - evaluation - (result.get("train_seconds") or 0.0), 3),
                         "load_1m": round(os.getloadavg()[0], 2), "deploy_steps": deploy})
            print(rows[-1], flush=True)
    total = {k: round(sum(r[k] or 0 for r in rows), 2) for k in ("wall_s", "train_s", "deploy_s", "eval_s", "other_s")}
    steps = sorted({k for r in rows for k in r["deploy_steps"]})
    step_total = {k: round(sum(r["deploy_steps"].get(k, 0.0) for r in rows), 2) for k in steps}
    table = [[r["cell"], r["status"], r["wall_s"], r["train_s"], r["deploy_s"], r["eval_s"], r["other_s"],
              f"{100 * (r['wall_s'] - (r['train_s'] or 0)) / r['wall_s']:.0f} %", r["load_1m"]] for r in rows]
    share = 100 * (total["wall_s"] - total["train_s"]) / total["wall_s"]
    table.append(["**all cells**", "", total["wall_s"], total["train_s"], total["deploy_s"], total["eval_s"], total["other_s"],
                  f"**{share:.0f} %**", ""])
    write("cell_time_split", {"machine": machine(), "grid": config, "source_models_s": round(source_seconds, 2),
                              "totals": total, "deploy_steps_total_s": step_total, "rows": rows}, table,
          ["cell", "status", "wall s", "train s", "deploy steps s", "evaluation s", "other s (validators, I/O)",
           "not training", "load 1m"],
          f"Per-cell wall time split for {'a quick check' if QUICK else 'the grid'} ({len(rows)} cells; source models "
          f"trained first in {source_seconds:.1f} s, not counted). After-training steps in total: "
          + ", ".join(f"{k} {v} s" for k, v in step_total.items()) + ". Goal: not training <= 30 %.")


if __name__ == "__main__":
    main()
