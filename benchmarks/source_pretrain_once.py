"""Benchmark 2: a grid of S strategies x L losses on one source pretrains the source model once.

Source models are trained in the grid's first phase (before any cell), so every cell reports
``source_cached``; the count of trainings comes from the run's log ("trained source model ...")
and the number of cached source files.
"""

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, source_trainings, write  # noqa: E402

STRATEGIES = ["linear-probe", "finetune"]
LOSSES = ["none", "dann", "coral"]


def main():
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "tlbench.cli.main", "run", "--backbone", "smallcnn", "--source", "digits:mnist", "--target",
             "digits:uci", "--strategy", ",".join(STRATEGIES), "--loss", ",".join(LOSSES), "--shots", "10", "--seeds", "0",
             "--results-dir", tmp, "--set", "train.steps=30", "--set", "train.source_epochs=1", "--set",
             "train.latency_repeats=3", "--set", "train.export_dynamo=false", "--set", "train.int8=false"],
            capture_output=True, text=True)
        seconds = time.perf_counter() - start
        results = [json.loads(p.read_text()) for p in sorted(Path(tmp).glob("*/result.json"))]
        cached = len(list((Path(tmp) / ".cache" / "sources").glob("*.pt")))
    trained = len(source_trainings(done.stdout))
    rows = [[r["strategy"], r["loss"], r["status"], "trained in the cell" if not r["source_cached"] else "shared cache",
             f"{r.get('source_train_seconds', 0):.2f}", f"{r.get('train_seconds', 0):.2f}"] for r in results]
    data = {"machine": machine(), "exit_code": done.returncode, "runs": len(results), "source_models_trained": trained,
            "cache_files": cached, "wall_seconds": round(seconds, 1),
            "rows": [{k: r.get(k) for k in ("strategy", "loss", "status", "source_cached", "source_train_seconds", "train_seconds")}
                     for r in results]}
    write("source_pretrain_once", data, rows, ["strategy", "loss", "status", "source model", "source train s", "transfer s"],
          f"{len(STRATEGIES)} strategies x {len(LOSSES)} losses, smallcnn, digits:mnist -> digits:uci: "
          f"{trained} source model(s) trained for {len(results)} runs ({cached} cache file); wall {seconds:.0f} s.")


if __name__ == "__main__":
    main()
