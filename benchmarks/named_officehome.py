"""A real grid on a synthetic copy of Office-Home in its published layout, read by the `officehome`
plugin: peak memory and wall time from a clean checkout.

    python benchmarks/named_officehome.py [--root DIR] [--per-domain 1000] [--steps 3]

Writes ``ROOT/officehome/<Art|Clipart|Product|Real_World>/<class>/<i>.jpg`` with the 65 published
class names (300x300 JPEGs hard-linked from 2,000 distinct synthetic images, as
benchmarks/data_pipeline.py makes them), then runs under ``/usr/bin/time``: resnet18 (random
init), 224 px, ``train.augment=tllib``, ``finetune`` with ``none`` and ``dann``, Art -> Clipart,
a few steps. Results go to results/benchmarks/named_officehome.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write  # noqa: E402
from data_pipeline import distinct_images  # noqa: E402


def officehome_tree(root: Path, per_domain: int, sources: list[Path]) -> Path:
    """ROOT/officehome in the published layout, ``per_domain`` images per domain over the 65 classes."""
    from tlbench_plugins.datasets.benchmarks.catalogue import BENCHMARKS

    b = BENCHMARKS["officehome"]
    top = root / f"officehome-{per_domain}"
    if (top / ".complete").exists():
        return top
    shutil.rmtree(top, ignore_errors=True)
    for d, domain in enumerate(b.domains):
        for i in range(per_domain):
            folder = top / domain / b.classes[i % len(b.classes)]
            folder.mkdir(parents=True, exist_ok=True)
            os.link(sources[(i * 7 + d * 13) % len(sources)], folder / f"{i:05d}.jpg")
    (top / ".complete").write_text("ok")
    return top


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "tlbench-data-pipeline")
    parser.add_argument("--per-domain", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args(argv)
    tree = officehome_tree(args.root, args.per_domain, distinct_images(args.root / "distinct"))
    results, cache = args.root / "officehome-runs", args.root / "officehome-cache"
    shutil.rmtree(results, ignore_errors=True)  # a finished grid would be skipped
    shutil.rmtree(cache, ignore_errors=True)  # the first cell decodes, as on a clean machine
    command = [sys.executable, "-m", "tlbench.cli.main", "run", "--backbone", "resnet18",
               "--source", "officehome:Art", "--target", "officehome:Clipart", "--data-root", str(tree),
               "--strategy", "finetune", "--loss", "none,dann", "--shots", "0", "--seeds", "0",
               "--set", "officehome.size=224", "--set", "train.augment=tllib", "--set", f"train.steps={args.steps}",
               "--set", "train.batch_size=16", "--set", "train.source_epochs=0.01", "--set", "train.int8=false",
               "--set", "train.latency_repeats=2", "--set", "train.export_dynamo=false",
               "--set", "train.bn_recalibration_batches=2", "--set", f"train.decode_cache_dir={cache}",
               "--threads", "2", "--results-dir", str(results)]
    info = {"machine": machine(), "per_domain": args.per_domain, "steps": args.steps,
            "command": " ".join(["tlbench", *command[3:]])}
    load = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M %e", *command], capture_output=True, text=True)
    rss_kb, wall = proc.stderr.strip().splitlines()[-1].split()
    info.update({"ok": proc.returncode == 0, "peak_rss_mb": round(int(rss_kb) / 1024, 1), "wall_s": float(wall),
                 "seconds": round(time.perf_counter() - start, 1), "load_at_start": round(load, 2),
                 "warnings": [line for line in proc.stderr.splitlines() if line.startswith("warning:")]})
    if not info["ok"]:
        info["tail"] = proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = [["grid status", "ok" if info["ok"] else "FAILED", "2 cells: finetune x (none, dann), Art -> Clipart"],
            ["peak RSS", f"{info['peak_rss_mb']:,.0f} MB", "/usr/bin/time %M of the whole `tlbench run` (one process)"],
            ["wall time", f"{info['wall_s']:.0f} s", f"load average {info['load_at_start']} at start"]]
    summary = (f"`python benchmarks/named_officehome.py --per-domain {args.per_domain} --steps {args.steps}`: a synthetic "
               f"Office-Home in its published layout ({args.per_domain:,} images per domain, 65 published class names), "
               f"read lazily by the `officehome` plugin through the decode cache. Command: `{info['command']}`.")
    write("named_officehome", info, rows, ["measure", "value", "detail"], summary)
    print(f"peak RSS {info['peak_rss_mb']:,.0f} MB, {info['wall_s']:.0f} s, ok={info['ok']}")
    return 0 if info["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
