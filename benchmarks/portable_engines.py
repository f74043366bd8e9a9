"""Benchmark: do tlbench's exported models run, with a symbolic batch (and time), in three
engines, and does a graph simplifier (onnxslim) make them smaller or faster?

For each backbone and both exporters (TorchScript, dynamo) a model trained as in
latency_backends.py (150 steps on the target training split) is exported with ``tlbench.deploy.onnx_export.export_onnx``
and then:
- size and node count: the exporter's graph as written (before tlbench drops its debug records),
  tlbench's file, and that file after ``onnxslim.slim``; onnxruntime latency (batch 1 / 64) of
  tlbench's file vs the slimmed one, and the slimmed file's max |Δlogit| against it;
- onnxruntime, OpenVINO (f32 hint) and tract each load the file once with its symbolic axes and
  run it at batch 1 and batch 7 (sequences: also a time length other than the export's); max
  |Δlogit| against torch. Where tract refuses the symbolic batch, the file is loaded again with the
  input shape fixed (``set_input_fact``), as a deployer would, and that is reported separately.
Needs the optional engines: ``pip install -e ".[bench]" -c constraints.txt`` (openvino, tract,
onnxslim); a missing one is reported as such.
Usage: python benchmarks/portable_engines.py [--quick] [BACKBONE ...]
"""

import importlib.metadata
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch

sys.path.insert(0, str(Path(__file__).parent))
import latency_backends as lb  # noqa: E402  (shares its data setup)
from common import machine, write  # noqa: E402

from tlbench.deploy import onnx_export  # noqa: E402
from tlbench.deploy.graph import input_axes  # noqa: E402
from tlbench.deploy.ort import make_session, ort_latency_ms, ort_logits  # noqa: E402
from tlbench.plugin.discovery import load_plugins  # noqa: E402

BACKBONES = ["smallcnn", "resnet18", "mobilenet_v3_small", "efficientnet_b0", "efficientnet_lite0", "cnn1d", "lstm", "gru"]
REPEATS_B1, REPEATS_B64 = (3, 3) if lb.QUICK else (30, 10)


def probes(test_x: torch.Tensor) -> list[torch.Tensor]:
    """Inputs at batch 1 and 7 at the export length; for sequences, batch 7 at another length too."""
    x = [test_x[:1], test_x[:7]]
    if test_x.dim() == 3:
        longer = torch.cat([test_x[:7], test_x[7:14, : test_x.shape[1] // 2]], dim=1)
        x.append(longer)
    return x


def worst(run, references) -> float:
    """Max |Δlogit| of ``run(x)`` against torch's logits over ``references`` ((x, logits) pairs)."""
    return max(float(np.abs(run(x) - logits).max()) for x, logits in references)


def openvino_runner(path):
    from tlbench.deploy import openvino as ov

    compiled = ov.compile_model(path)
    return lambda x: ov.logits(compiled, x)


def tract_runner(path, fixed_shape=None):
    import tract

    loaded = tract.onnx().load(str(path))
    if fixed_shape is not None:
        loaded.set_input_fact(0, ",".join(map(str, fixed_shape)) + ",f32")
    runnable = loaded.into_model().into_runnable()
    return lambda x: runnable.run([np.ascontiguousarray(x, dtype=np.float32)])[0].to_numpy()


def engine_check(name, make, references) -> str:
    """'max |Δ|' over all probe inputs, or the engine's first error line."""
    try:
        return f"{worst(make(), references):.1e}"
    except ImportError:
        return f"{name} not installed"
    except BaseException as exc:  # noqa: BLE001 - an engine's refusal is the measurement
        return "error: " + (str(exc).strip().splitlines() or [type(exc).__name__])[0][:90]


def tract_check(path, references) -> str:
    """tract with the symbolic axes; where that fails, per-shape loads with the input fixed."""
    symbolic = engine_check("tract", lambda: tract_runner(path), references)
    if not symbolic.startswith("error"):
        return symbolic
    fixed = []
    for x, logits in references:
        fixed.append(engine_check("tract", lambda: tract_runner(path, x.shape), [(x, logits)]))
    bad = [f for f in fixed if f.startswith("error")]
    tail = bad[0] if bad else f"{max(float(f) for f in fixed):.1e}"
    return f"symbolic: {symbolic}; fixed shapes: {tail}"


def slim_row(path, s, tmp, x1, x64) -> dict:
    """Nodes, size, latency and parity of ``onnxslim.slim(path)`` against ``path`` (session ``s``)."""
    try:
        import onnxslim
    except ImportError:
        return {"slim": "onnxslim not installed"}
    slim_path = Path(tmp) / (path.stem + ".slim.onnx")
    onnx.save(onnxslim.slim(onnx.load(str(path))), str(slim_path))
    slim = make_session(slim_path)[0]
    diff = max(float(np.abs(ort_logits(slim, x) - ort_logits(s, x)).max()) for x in (x1, x64))
    return {"slim_nodes": len(onnx.load(str(slim_path)).graph.node), "slim_mb": slim_path.stat().st_size / 1e6,
            "slim_max_abs_diff": diff,
            "ort_b1": ort_latency_ms(s, x1, REPEATS_B1), "ort_b64": ort_latency_ms(s, x64, REPEATS_B64),
            "slim_b1": ort_latency_ms(slim, x1, REPEATS_B1), "slim_b64": ort_latency_ms(slim, x64, REPEATS_B64)}


def measure(registry, name, dynamo: bool, tmp) -> dict:
    model, _, test_x, _ = lb.trained(registry, name)  # trained: an untrained net's logits are near 0 everywhere
    tag = "dynamo" if dynamo else "torchscript"
    path = Path(tmp) / f"{name}.{tag}.onnx"
    raw = onnx_export._export_proto(model, test_x[:2], test_x.dim() == 3, dynamo)
    onnx_export.export_onnx(model, test_x[:2], path, {}, dynamo=dynamo)
    inputs = probes(test_x)
    with torch.no_grad():
        references = [(x.numpy(), model(x).numpy()) for x in inputs]
    x1, x64 = test_x[:1].numpy(), test_x[:64].numpy()
    row = {"backbone": name, "exporter": tag, "input_axes": input_axes(path)[1],
           "raw_nodes": len(raw.graph.node), "raw_mb": len(raw.SerializeToString()) / 1e6,
           "nodes": len(onnx.load(str(path)).graph.node), "mb": path.stat().st_size / 1e6,
           "probes": [list(x.shape) for x in inputs]}
    session = make_session(path)[0]
    row["onnxruntime"] = engine_check("onnxruntime", lambda: (lambda x: ort_logits(session, x)), references)
    row["openvino"] = engine_check("openvino", lambda: openvino_runner(path), references)
    row["tract"] = tract_check(path, references)
    row.update(slim_row(path, session, tmp, x1, x64))
    return row


def main():
    registry = load_plugins([])[1]
    names = [a for a in sys.argv[1:] if not a.startswith("--")] or (BACKBONES[:1] + BACKBONES[-2:] if lb.QUICK else BACKBONES)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            for dynamo in (False, True):
                try:
                    rows.append(measure(registry, name, dynamo, tmp))
                except Exception as exc:  # a backbone that cannot be exported here is reported, not fatal
                    rows.append({"backbone": name, "exporter": "dynamo" if dynamo else "torchscript",
                                 "error": f"{type(exc).__name__}: {exc}"[:200]})
                print(rows[-1], flush=True)
    table = []
    for r in rows:
        if "error" in r:
            table.append([r["backbone"], r["exporter"], "error: " + r["error"]] + [""] * 6)
            continue
        slim = (r["slim"] if "slim" in r else
                f"{r['slim_nodes']} nodes, {r['slim_mb']:.3f} MB; ORT ms {r['ort_b1']:.2f} -> {r['slim_b1']:.2f} (b1), "
                f"{r['ort_b64']:.1f} -> {r['slim_b64']:.1f} (b64); max abs diff {r['slim_max_abs_diff']:.1e}")
        table.append([r["backbone"], r["exporter"], f"{r['raw_nodes']} / {r['nodes']}", f"{r['raw_mb']:.3f} / {r['mb']:.3f}",
                      r["onnxruntime"], r["openvino"], r["tract"], slim])
    versions = {}
    for dist in ("openvino", "tract", "onnxslim"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    write("portable_engines", {"machine": machine(), "engines": versions, "rows": rows}, table,
          ["backbone", "exporter", "nodes: exporter / tlbench", "MB: exporter / tlbench",
           "onnxruntime max abs diff vs torch", "OpenVINO (f32 hint) max abs diff vs torch", "tract max abs diff vs torch",
           "onnxslim on tlbench's file"],
          "Each engine loads tlbench's ONNX file once, with its symbolic `batch` (and `time`) axes, and runs it at "
          "batch 1 and 7 (sequences: also at half again the export length); max |Δlogit| against torch over those "
          f"inputs (models trained 150 steps as in latency_backends). Engines: {versions}.")


if __name__ == "__main__":
    main()
