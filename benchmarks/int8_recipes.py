"""Benchmark: INT8 accuracy drop, latency and quantization time per static quantization recipe,
per backbone whose graph takes the static path (CNNs, 2-D and 1-D; recurrent graphs are
quantized dynamically and listed as such).

Each backbone is trained as in latency_backends.py, exported once, then quantized with each
recipe (tlbench.deploy.quantize.STATIC_RECIPE overridden by the recipe's keys): calibration
method, full-range vs 7-bit weights, first conv and classifier kept in fp32, calibration sample
count. Goal: <= 1 point below fp32 for every backbone above chance.

The summary table ranks the recipes: most backbones (above chance) within 1 point, then the
smallest worst drop, then the lowest median INT8/fp32 latency ratio; the top one is suggested
with the exact ``STATIC_RECIPE = ...`` line to put in tlbench/deploy/quantize.py (the default
recipe is that one line). The digits test split has 359 rows: 0.28 points is one row.
Usage: python benchmarks/int8_recipes.py [--quick] [--image-data=DATASET:DOMAIN] [--recipes=A,B] [BACKBONE ...]
  --quick: as latency_backends.py --quick (10 training steps, 3 repeats, output under /tmp).
  --image-data: as in latency_backends.py (output int8_recipes_DATASET-DOMAIN.*).
  --recipes: only these recipes (names of RECIPES).
"""

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import latency_backends as lb  # noqa: E402  (shares its training setup and --quick)
from common import machine, write  # noqa: E402

from tlbench.deploy.onnx_export import export_onnx  # noqa: E402
from tlbench.deploy.ort import make_session, ort_latency_ms, ort_logits  # noqa: E402
from tlbench.deploy.quantize import STATIC, STATIC_RECIPE, quantize_model  # noqa: E402
from tlbench.plugin.discovery import load_plugins  # noqa: E402

RECIPES = {
    "default": {},
    "entropy": {"calibration": "Entropy"},
    "percentile": {"calibration": "Percentile"},
    "full-range": {"reduce_range": False},
    "keep-edges": {"keep_edges": True},
    "full-range+keep-edges": {"reduce_range": False, "keep_edges": True},
    "64 samples": {"examples": 64},
    "256 samples": {"examples": 256},
}
ONLY = next((a.split("=", 1)[1].split(",") for a in sys.argv if a.startswith("--recipes=")), None)
if ONLY:
    RECIPES = {label: recipe for label, recipe in RECIPES.items() if label in ONLY}
ABOVE_CHANCE = 1.5  # a backbone counts when its fp32 accuracy is at least 1.5x chance
GOAL_POINTS = 1.0


def measure(registry, name, tmp):
    """One row per recipe for backbone ``name`` (or one note row when its graph is not static)."""
    model, train_x, test_x, y = lb.trained(registry, name)
    fp32 = Path(tmp) / f"{name}.onnx"
    export_onnx(model, test_x[:2], fp32, {}, dynamo=False)
    s32 = make_session(fp32)[0]
    logits = ort_logits(s32, test_x.numpy(), 256)
    fp32_acc = float((logits.argmax(1) == y).mean())
    x1, x64 = test_x[:1].numpy(), test_x[:64].numpy()
    fp32_b1, fp32_b64 = ort_latency_ms(s32, x1, lb.REPEATS_B1), ort_latency_ms(s32, x64, lb.REPEATS_B64)
    base = {"backbone": name, "test_rows": len(y), "fp32_acc": fp32_acc, "above_chance": fp32_acc >= ABOVE_CHANCE / logits.shape[1],
            "fp32_b1": fp32_b1, "fp32_b64": fp32_b64}
    rows = []
    for label, recipe in RECIPES.items():
        int8 = Path(tmp) / f"{name}.{label.replace(' ', '_').replace('+', '_')}.int8.onnx"
        try:
            start = time.perf_counter()
            method = quantize_model(fp32, int8, train_x.numpy(), recipe=recipe)
            seconds = time.perf_counter() - start
            if method != STATIC:
                return [{**base, "recipe": "-", "note": f"{method} quantization: no static recipe applies"}]
            s8 = make_session(int8)[0]
            acc = float((ort_logits(s8, test_x.numpy(), 256).argmax(1) == y).mean())
            rows.append({**base, "recipe": label, "int8_acc": acc, "drop_points": round(100 * (fp32_acc - acc), 2),
                         "quantize_s": round(seconds, 3), "int8_b1": ort_latency_ms(s8, x1, lb.REPEATS_B1),
                         "int8_b64": ort_latency_ms(s8, x64, lb.REPEATS_B64)})
        except Exception as exc:  # a recipe onnxruntime refuses is reported, not fatal
            rows.append({**base, "recipe": label, "error": f"{type(exc).__name__}: {exc}"[:200]})
        print(rows[-1], flush=True)
    return rows


def summarize(rows) -> list[dict]:
    """Per recipe, over the backbones above chance: how many within GOAL_POINTS, worst and mean
    drop, median INT8/fp32 latency at batch 1 and 64, median quantization time; ranked."""
    out = []
    for label in RECIPES:
        mine = [r for r in rows if r.get("recipe") == label and r["above_chance"]]
        ok = [r for r in mine if "error" not in r]
        if not mine:
            continue
        drops = [r["drop_points"] for r in ok]
        out.append({
            "recipe": label, "backbones": len(mine), "errors": len(mine) - len(ok),
            "within_goal": sum(d <= GOAL_POINTS for d in drops),
            "worst_drop": max(drops) if drops else None, "mean_drop": round(statistics.mean(drops), 2) if drops else None,
            "int8_vs_fp32_b1": round(statistics.median(r["int8_b1"] / r["fp32_b1"] for r in ok), 3) if ok else None,
            "int8_vs_fp32_b64": round(statistics.median(r["int8_b64"] / r["fp32_b64"] for r in ok), 3) if ok else None,
            "quantize_s": round(statistics.median(r["quantize_s"] for r in ok), 2) if ok else None,
        })
    worst = float("inf")
    out.sort(key=lambda s: (-s["within_goal"], s["errors"], worst if s["worst_drop"] is None else s["worst_drop"],
                            s["int8_vs_fp32_b64"] or worst))
    return out


def _markdown(summary) -> str:
    header = ["rank", "recipe", "within 1 pt", "errors", "worst drop pts", "mean drop pts", "INT8/fp32 b1",
              "INT8/fp32 b64", "quantize s (median)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for i, s in enumerate(summary, 1):
        lines.append("| " + " | ".join(str(v) for v in (i, s["recipe"], f"{s['within_goal']}/{s['backbones']}", s["errors"],
                                                         s["worst_drop"], s["mean_drop"], s["int8_vs_fp32_b1"],
                                                         s["int8_vs_fp32_b64"], s["quantize_s"])) + " |")
    if summary:
        best = {**STATIC_RECIPE, **RECIPES[summary[0]["recipe"]]}
        lines += ["", f"Suggested default: `{summary[0]['recipe']}`. In tlbench/deploy/quantize.py set:", "",
                  f"    STATIC_RECIPE = {best!r}"]
    return "\n".join(lines)


def main():
    registry = load_plugins([])[1]
    names = [a for a in sys.argv[1:] if not a.startswith("--")] or registry.names("backbones")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            try:
                rows += measure(registry, name, tmp)
            except Exception as exc:
                rows.append({"backbone": name, "recipe": "-", "above_chance": False, "error": f"{type(exc).__name__}: {exc}"[:200]})
    summary = summarize(rows)
    sizes = ", ".join(f"{n} rows ({100 / n:.2f} points per row)" for n in sorted({r["test_rows"] for r in rows if r.get("test_rows")}))
    table = [[r["backbone"], r["recipe"], r.get("error") or r.get("note") or
              f"{100 * r['fp32_acc']:.1f} -> {100 * r['int8_acc']:.1f} ({r['drop_points']:+.2f} pts drop)",
              "" if "int8_b1" not in r else f"{r['fp32_b1']:.3f} -> {r['int8_b1']:.3f}",
              "" if "int8_b64" not in r else f"{r['fp32_b64']:.2f} -> {r['int8_b64']:.2f}",
              r.get("quantize_s", ""), "" if "fp32_acc" not in r else ("yes" if r["above_chance"] else "no (not counted)")]
             for r in rows]
    suffix = "_" + lb.IMAGE_DATA.replace(":", "-") if lb.IMAGE_DATA else ""
    write("int8_recipes" + suffix, {"machine": machine(), "default_recipe": STATIC_RECIPE, "recipes": RECIPES,
                           "summary": summary, "rows": rows}, table,
          ["backbone", "recipe", "acc % fp32 -> int8", "ORT ms b1 fp32 -> int8", "ORT ms b64 fp32 -> int8",
           "quantize s", "above chance"],
          f"INT8 recipes (each overrides the default {STATIC_RECIPE}); models trained {lb.TRAIN_STEPS} steps on the "
          f"target training split (as in latency_backends; image data {':'.join(lb.DATASETS['image'])}). Goal: <= {GOAL_POINTS:g} point drop for every backbone "
          f"above chance (fp32 accuracy >= {ABOVE_CHANCE:g}x chance). Test splits: {sizes}.\n\n" + _markdown(summary) + "\n\nPer backbone and recipe:")


if __name__ == "__main__":
    main()
