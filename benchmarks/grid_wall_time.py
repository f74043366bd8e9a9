"""Benchmark 4: wall time of the built-in default grid (`tlbench run --grid`) in a fresh results dir."""

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, write  # noqa: E402


def main():
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "tlbench.cli", "run", "--grid", "--results-dir", tmp],
                              capture_output=True, text=True)
        seconds = time.perf_counter() - start
        results = [json.loads(p.read_text()) for p in Path(tmp).glob("*/result.json")]
    ok = sum(r["status"] == "ok" for r in results)
    train = sum(r.get("train_seconds", 0) or 0 for r in results)
    source = sum(r.get("source_train_seconds", 0) or 0 for r in results)
    data = {"machine": machine(), "exit_code": done.returncode, "runs": len(results), "ok": ok, "wall_seconds": round(seconds, 1),
            "transfer_train_seconds": round(train, 1), "source_train_seconds": round(source, 1),
            "sources_trained": sum(not r.get("source_cached", True) for r in results)}
    write("grid_wall_time", data, [[len(results), ok, data["sources_trained"], f"{seconds:.0f}", f"{source:.0f}", f"{train:.0f}"]],
          ["runs", "ok", "source models trained", "wall s", "source training s", "transfer training s"],
          "`tlbench run --grid` (default grid) from an empty results directory; goal: under 5 minutes.")


if __name__ == "__main__":
    main()
