"""onnxruntime sessions: provider choice by what is really there, deliberate settings, quiet CPU fallback.

Settings (recorded with every result as ``ort_settings``):
- graph optimisation ``ORT_ENABLE_ALL``: constant folding, Conv+BN+activation fusion and the
  layout transforms that make the CPU kernels fast; the exported graphs are static, so the
  one-off optimisation cost is paid at session creation, not per call;
- ``intra_op_num_threads`` = the CPUs this process may use (what torch uses by default, so
  torch-vs-onnxruntime latencies compare like with like); ``inter_op_num_threads`` = 1 with
  sequential execution: the graphs are chains, parallel branches would only add contention.
This module imports no torch (``tlbench predict`` relies on that).
"""

from __future__ import annotations

import os

import numpy as np

from tlbench.utils.timing import median_ms
from tlbench.settings.train import EVAL_BATCH_SIZE

GRAPH_OPTIMIZATION = "ORT_ENABLE_ALL"


def default_threads() -> int:
    """CPUs available to this process (cgroup/affinity aware where the OS tells)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def providers_for(device: str) -> list[str]:
    """CUDA only when the run is on a GPU and this onnxruntime build has the provider."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if str(device).startswith("cuda") and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def session_settings(threads: int = 0) -> dict:
    """The session settings ``make_session`` uses, as recorded in result.json."""
    return {
        "graph_optimization_level": GRAPH_OPTIMIZATION,
        "intra_op_num_threads": threads or default_threads(),
        "inter_op_num_threads": 1,
        "execution_mode": "sequential",
    }


def make_session(model_path, device: str = "cpu", threads: int = 0):
    """An InferenceSession with the settings above; returns (session, provider used)."""
    import onnxruntime as ort

    ort.set_default_logger_severity(3)
    settings = session_settings(threads)
    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, settings["graph_optimization_level"])
    options.intra_op_num_threads = settings["intra_op_num_threads"]
    options.inter_op_num_threads = settings["inter_op_num_threads"]
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(str(model_path), sess_options=options, providers=providers_for(device))
    return session, session.get_providers()[0]


def ort_logits(session, x: np.ndarray, batch_size: int = EVAL_BATCH_SIZE) -> np.ndarray:
    """Run ``x`` through an onnxruntime session in batches."""
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: x[i : i + batch_size]})[0] for i in range(0, len(x), batch_size)])


def ort_latency_ms(session, x: np.ndarray, repeats: int, warmup: int = 3) -> float:
    """Median onnxruntime latency for one call on ``x`` (tlbench.utils.timing: warm-up, median)."""
    name = session.get_inputs()[0].name
    return median_ms(lambda: session.run(None, {name: x}), repeats=repeats, warmup=warmup)
