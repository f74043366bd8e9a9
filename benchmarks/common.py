"""Shared helpers for the on-demand benchmarks: machine facts and JSON + markdown output."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "results" / "benchmarks"


def machine() -> dict:
    """Machine, versions and date recorded with every benchmark."""
    import torch

    from tlbench.utils.environment import versions

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu,
        "cpus_available": len(os.sched_getaffinity(0)),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "versions": versions(),
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),
    }


def source_trainings(log: str) -> list[float]:
    """Seconds of each source-model training announced in a `tlbench run` log. Source models
    are trained in the grid's first phase, so the cells themselves all report them as cached."""
    return [float(m) for m in re.findall(r"trained source model .*? in ([0-9.]+)s", log)]


def write(name: str, data: dict, table: list[list], header: list[str], summary: str) -> None:
    """Write results/benchmarks/NAME[_gpu].json and .md."""
    suffix = "_gpu" if data["machine"]["gpu"] else ""
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}{suffix}.json").write_text(json.dumps(data, indent=2) + "\n")
    m = data["machine"]
    lines = [f"# {name}", "", summary, "", f"Machine: {m['cpu']} ({m['cpus_available']} CPUs, torch threads {m['torch_threads']}), "
             f"GPU: {m['gpu'] or 'none'}; {m['date']}; torch {m['versions'].get('torch')}, "
             f"onnxruntime {m['versions'].get('onnxruntime-gpu') or m['versions'].get('onnxruntime')}; load average {m['load_average_1m_at_start']} at start.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in table]
    (OUT / f"{name}{suffix}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
