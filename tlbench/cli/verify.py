"""``tlbench verify RUNS [--sample K]``: re-run stored cells from their recorded specs into a
scratch folder and say, per cell, whether the numbers came out identical, within tolerance (with
the difference) or different, and the likely reason when the provenance differs."""

from __future__ import annotations

import json
import random
import sys
import tempfile
from pathlib import Path

from tlbench.plugin.errors import UserError

COMPARED = ("target_acc", "source_acc", "onnx_target_acc")
DEFAULT_TOLERANCE = 0.005  # half a point of accuracy


def add_verify_parser(sub) -> None:
    verify = sub.add_parser("verify", help="re-run stored cells from their recorded specs and compare the numbers")
    verify.add_argument("results_dir", metavar="RUNS", help="a results directory (DIR/<run>/result.json)")
    verify.add_argument("--sample", metavar="K", help="re-run K cells picked at random (seeded; default: all)")
    verify.add_argument("--tolerance", default=str(DEFAULT_TOLERANCE), metavar="T",
                        help=f"largest difference still called within tolerance (default {DEFAULT_TOLERANCE})")
    verify.add_argument("--device", default="auto", metavar="DEV", help="auto (default), cpu, cuda, cuda:N")
    verify.add_argument("--threads", metavar="N", help="torch CPU threads")
    verify.add_argument("--json", action="store_true", help="machine-readable report")
    verify.add_argument("--plugins-dir", action="append", default=[], metavar="DIR", dest="run_plugins_dir",
                        help="plugin folder the stored cells used")


def _number(text: str, what: str, cast):
    try:
        value = cast(text)
    except (TypeError, ValueError):
        raise UserError(f"{what} {text!r} must be a number") from None
    if value < 0 or (cast is int and value < 1):
        raise UserError(f"{what} {text!r} is out of range")
    return value


def likely_reasons(stored: dict, again: dict) -> list[str]:
    """What differs between how the two results were produced (library versions, data, device, CPU, code)."""
    reasons = []
    old_v, new_v = stored.get("versions") or {}, again.get("versions") or {}
    for library in sorted(set(old_v) | set(new_v)):
        if old_v.get(library) != new_v.get(library) and old_v.get(library) and new_v.get(library):
            reasons.append(f"{library} {old_v[library]} -> {new_v[library]}")
    old_a, new_a = stored.get("audit") or {}, again.get("audit") or {}
    changed = [k for k, v in (old_a.get("data") or {}).items() if v and v != (new_a.get("data") or {}).get(k)]
    if changed:
        reasons.append("data fingerprint changed: " + ", ".join(changed))
    if stored.get("device") != again.get("device"):
        reasons.append(f"device {stored.get('device')} -> {again.get('device')}")
    old_hw, new_hw = old_a.get("hardware") or {}, new_a.get("hardware") or {}
    field = "cpu" if old_hw.get("cpu") and new_hw.get("cpu") else None  # like with like: the recorded CPU model,
    old_cpu = old_hw.get("cpu") if field else stored.get("device_name")  # else the device name both results hold
    new_cpu = new_hw.get("cpu") if field else again.get("device_name")
    if old_cpu and new_cpu and old_cpu != new_cpu:
        reasons.append(f"other processor ({old_cpu} -> {new_cpu})")
    if old_hw and new_hw and old_hw.get("gpu") != new_hw.get("gpu"):
        reasons.append(f"other GPU ({old_hw.get('gpu')} -> {new_hw.get('gpu')})")
    old_c, new_c = (old_a.get("code") or {}).get("commit"), (new_a.get("code") or {}).get("commit")
    if old_c and new_c and old_c != new_c:
        reasons.append(f"code {old_c[:10]} -> {new_c[:10]}")
    if not old_a:
        reasons.append("the stored result predates recorded provenance (its code revision, data and CPU model are "
                       "unknown)")
    return reasons


def compare(stored: dict, again: dict, tolerance: float) -> dict:
    """One cell's verdict: ``identical``, ``within tolerance`` or ``different``, with the differences."""
    if again.get("status") != "ok":
        return {"verdict": "different", "differences": {}, "note": f"the re-run failed: {again.get('error')}"}
    diffs = {}
    for key in COMPARED:
        old, new = stored.get(key), again.get(key)
        if old is None and new is None:
            continue
        if old is None or new is None:
            diffs[key] = None
        elif old != new:
            diffs[key] = new - old
    if not diffs:
        verdict = "identical"
    elif all(d is not None and abs(d) <= tolerance for d in diffs.values()):
        verdict = "within tolerance"
    else:
        verdict = "different"
    return {"verdict": verdict, "differences": diffs, "reasons": likely_reasons(stored, again) if diffs else []}


def _stored_cells(directory: Path) -> list[tuple[Path, dict]]:
    from tlbench.execution.results import read_result

    cells = []
    for path in sorted(directory.glob("*/result.json")):
        record = read_result(path)
        if record is not None and record.get("status") == "ok":
            cells.append((path.parent, record))
    return cells


def cmd_verify(args, registry) -> int:
    from rich.console import Console

    from tlbench.execution.grid_runner import run_grid
    from tlbench.execution.contract import ExecutorSettings
    from tlbench.grid.spec import RunSpec
    from tlbench.utils.environment import resolve_device

    directory = Path(args.results_dir)
    if not directory.is_dir():
        raise UserError(f"results directory {str(directory)!r} does not exist; pass the RUNS folder of a finished grid")
    tolerance = _number(args.tolerance, "--tolerance", float)
    sample = _number(args.sample, "--sample", int) if args.sample is not None else None
    threads = _number(args.threads, "--threads", int) if args.threads is not None else None
    device = resolve_device(args.device)
    cells = _stored_cells(directory)
    if not cells:
        raise UserError(f"no finished cell under {str(directory)!r}; expected RUNS/<run>/result.json with status ok")
    if sample is not None:
        cells = sorted(random.Random(0).sample(cells, min(sample, len(cells))), key=lambda c: c[0].name)
    console = Console(stderr=True)
    plugin_dirs = list(getattr(args, "plugins_dir", []) or []) + list(args.run_plugins_dir or [])
    report = []
    specs = {}
    for run_dir, stored in cells:
        try:
            specs[run_dir.name] = RunSpec.from_record(stored)
        except (TypeError, ValueError, UserError) as exc:
            report.append({"cell": run_dir.name, "verdict": "different", "differences": {},
                           "note": f"its spec cannot be rebuilt: {exc}"})
    with tempfile.TemporaryDirectory(prefix="tlbench-verify-") as scratch:
        # one grid run, so cells that share a source model train it once, as the original grid did
        run_grid(list(specs.values()), registry, scratch, device, console, ExecutorSettings(threads=threads), plugin_dirs)
        for run_dir, stored in cells:
            if run_dir.name not in specs:
                continue
            again_path = Path(scratch) / specs[run_dir.name].dirname / "result.json"
            again = json.loads(again_path.read_text()) if again_path.is_file() else {"status": "failed",
                                                                                     "error": "no result written"}
            report.append({"cell": run_dir.name, **compare(stored, again, tolerance)})
    return _print(report, args.json, tolerance)


def _print(report: list[dict], as_json: bool, tolerance: float) -> int:
    bad = sum(item["verdict"] == "different" for item in report)
    if as_json:
        print(json.dumps({"tolerance": tolerance, "cells": report, "different": bad}, indent=2))
    else:
        for item in report:
            diffs = ", ".join(f"{k} {'missing' if v is None else f'{v:+.4f}'}" for k, v in item["differences"].items())
            why = "; ".join(item.get("reasons") or []) or item.get("note", "")
            line = f"{item['verdict']:>16}  {item['cell']}" + (f"  ({diffs})" if diffs else "") + (f"  likely: {why}" if why else "")
            print(line)
        counts = {v: sum(i["verdict"] == v for i in report) for v in ("identical", "within tolerance", "different")}
        print(f"{len(report)} cell(s): {counts['identical']} identical, {counts['within tolerance']} within tolerance "
              f"({tolerance}), {counts['different']} different")
    sys.stdout.flush()
    return 1 if bad else 0
