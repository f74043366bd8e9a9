"""Benchmark: INT8 accuracy drop and latency per static quantization recipe, per CNN backbone.

Each backbone is trained as in latency_backends.py, exported once, then quantized with each
recipe (tlbench.deploy.quantize.STATIC_RECIPE overridden): calibration method, full-range vs
7-bit weights, first conv and classifier kept in fp32, calibration sample count. Goal: <= 1 point
below fp32 for every backbone above chance; choose the default recipe from this table.
Usage: python benchmarks/int8_recipes.py [--quick] [BACKBONE ...]
"""

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import latency_backends as lb  # noqa: E402  (shares its training setup and --quick)
from common import machine, write  # noqa: E402

from tlbench.deploy.onnx_export import export_onnx  # noqa: E402
from tlbench.deploy.ort import make_session, ort_latency_ms, ort_logits  # noqa: E402
from tlbench.deploy.quantize import STATIC, quantize_model  # noqa: E402
from tlbench.plugin.discovery import load_plugins  # noqa: E402

RECIPES = {
    "default": {},
    "entropy": {"calibration": "Entropy"},
    "percentile": {"calibration": "Percentile"},
    "full-range": {"reduce_range": False},
    "keep-edges": {"keep_edges": True},
    "full-range+keep-edges": {"reduce_range": False, "keep_edges": True},
    "64 samples": {"examples": 64},
}


def measure(registry, name, tmp):
    model, train_x, test_x, y = lb.trained(registry, name)
    fp32 = Path(tmp) / f"{name}.onnx"
    export_onnx(model, test_x[:2], fp32, {}, dynamo=False)
    s32 = make_session(fp32)[0]
    fp32_acc = float((ort_logits(s32, test_x.numpy(), 256).argmax(1) == y).mean())
    rows = []
    for label, recipe in RECIPES.items():
        int8 = Path(tmp) / f"{name}.{label.replace(' ', '_').replace('+', '_')}.int8.onnx"
        try:
            if quantize_model(fp32, int8, train_x.numpy(), recipe=recipe) != STATIC:
                return [{"backbone": name, "recipe": "-", "note": "not a static-quantization graph"}]
            s8 = make_session(int8)[0]
            acc = float((ort_logits(s8, test_x.numpy(), 256).argmax(1) == y).mean())
            rows.append({"backbone": name, "recipe": label, "fp32_acc": fp32_acc, "int8_acc": acc,
                         "drop_points": round(100 * (fp32_acc - acc), 2),
                         "int8_b1": ort_latency_ms(s8, test_x[:1].numpy(), lb.REPEATS_B1),
                         "fp32_b1": ort_latency_ms(s32, test_x[:1].numpy(), lb.REPEATS_B1)})
        except Exception as exc:  # a recipe onnxruntime refuses is reported, not fatal
            rows.append({"backbone": name, "recipe": label, "error": f"{type(exc).__name__}: {exc}"[:200]})
        print(rows[-1], flush=True)
    return rows


def main():
    registry = load_plugins([])[1]
    names = [a for a in sys.argv[1:] if not a.startswith("--")] or [
        n for n in registry.names("backbones") if registry.get("backbones", n).meta.get("modality", "image") == "image"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            try:
                rows += measure(registry, name, tmp)
            except Exception as exc:
                rows.append({"backbone": name, "recipe": "-", "error": f"{type(exc).__name__}: {exc}"[:200]})
    table = [[r["backbone"], r["recipe"], r.get("error") or r.get("note") or
              f"{100 * r['fp32_acc']:.1f} -> {100 * r['int8_acc']:.1f} ({r['drop_points']:+.2f} pts drop)",
              "" if "int8_b1" not in r else f"{r['fp32_b1']:.3f} -> {r['int8_b1']:.3f}"] for r in rows]
    write("int8_recipes", {"machine": machine(), "recipes": RECIPES, "rows": rows}, table,
          ["backbone", "recipe", "acc % fp32 -> int8", "ORT ms b1 fp32 -> int8"],
          f"INT8 recipes per backbone; models trained {lb.TRAIN_STEPS} steps on the target training split "
          "(as in latency_backends). Goal: <= 1 point drop for every backbone above chance.")


if __name__ == "__main__":
    main()
