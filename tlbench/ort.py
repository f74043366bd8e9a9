"""onnxruntime sessions: provider choice by what is really there, quiet CPU fallback."""

from __future__ import annotations


def providers_for(device: str) -> list[str]:
    """CUDA only when the run is on a GPU and this onnxruntime build has the provider."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if str(device).startswith("cuda") and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def make_session(model_path, device: str = "cpu", threads: int = 0):
    """An InferenceSession with full graph optimisation; returns (session, provider used)."""
    import onnxruntime as ort

    ort.set_default_logger_severity(3)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(model_path), sess_options=options, providers=providers_for(device))
    return session, session.get_providers()[0]
