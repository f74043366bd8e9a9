"""OpenVINO as a second runtime that checks what onnxruntime says (optional extra ``openvino``).

OpenVINO's CPU plugin runs fp32 models in bf16 by default on CPUs with AMX/AVX-512 bf16, which
moves logits by up to ~0.2; every model here is compiled with ``INFERENCE_PRECISION_HINT=f32``
so its numbers can be compared with onnxruntime's. This module imports no torch.
"""

from __future__ import annotations

import numpy as np

from tlbench.deploy.ort import default_threads
from tlbench.utils.timing import median_ms
from tlbench.settings.train import EVAL_BATCH_SIZE

PRECISION_HINT = "f32"


def version() -> str:
    import openvino

    return openvino.__version__.split("-")[0]


def compile_model(path, threads: int = 0):
    """An OpenVINO CPU model compiled from the ONNX file at ``path`` (f32 precision hint)."""
    import openvino as ov

    core = ov.Core()
    config = {"INFERENCE_PRECISION_HINT": PRECISION_HINT, "INFERENCE_NUM_THREADS": threads or default_threads()}
    return core.compile_model(core.read_model(str(path)), "CPU", config)


def logits(compiled, x: np.ndarray, batch_size: int = EVAL_BATCH_SIZE) -> np.ndarray:
    """Run ``x`` through a compiled model in batches."""
    request = compiled.create_infer_request()
    out = []
    for i in range(0, len(x), batch_size):
        request.infer({0: np.ascontiguousarray(x[i : i + batch_size], dtype=np.float32)})
        out.append(np.array(request.get_output_tensor(0).data, copy=True))
    return np.concatenate(out)


def latency_ms(compiled, x: np.ndarray, repeats: int) -> float:
    """Median latency of one synchronous call on ``x``."""
    request = compiled.create_infer_request()
    feed = {0: np.ascontiguousarray(x, dtype=np.float32)}
    return median_ms(lambda: request.infer(feed), repeats=repeats)
