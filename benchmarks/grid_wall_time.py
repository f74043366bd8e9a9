"""Benchmark 4: wall time of the built-in default grid (`tlbench run --grid`) from an empty results dir.

The grid's runs are kept in results/default-grid/runs (emptied first, so nothing is skipped) and
its leaderboard is exported beside them, so the committed default-grid results are exactly the
ones this benchmark timed.
"""

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import OUT, machine, source_trainings, write  # noqa: E402

KEEP = OUT.parent / "default-grid"


def main():
    runs = KEEP / "runs"
    shutil.rmtree(runs, ignore_errors=True)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "tlbench.cli.main", "run", "--grid", "--results-dir", str(runs)],
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    results = [json.loads(p.read_text()) for p in runs.glob("*/result.json")]
    subprocess.run([sys.executable, "-m", "tlbench.cli.main", "leaderboard", str(runs), "--export-all", str(KEEP)],
                   capture_output=True, text=True, check=True)
    ok = sum(r["status"] == "ok" for r in results)
    train = sum(r.get("train_seconds", 0) or 0 for r in results)
    sources = source_trainings(done.stdout)
    source = sum(sources)
    data = {"machine": machine(), "exit_code": done.returncode, "runs": len(results), "ok": ok, "wall_seconds": round(seconds, 1),
            "transfer_train_seconds": round(train, 1), "source_train_seconds": round(source, 1),
            "sources_trained": len(sources)}
    write("grid_wall_time", data, [[len(results), ok, data["sources_trained"], f"{seconds:.0f}", f"{source:.0f}", f"{train:.0f}"]],
          ["runs", "ok", "source models trained", "wall s", "source training s", "transfer training s"],
          "`tlbench run --grid` (default grid) from an empty results directory; goal: under 5 minutes. "
          "Its results and leaderboard: results/default-grid/.")


if __name__ == "__main__":
    main()
