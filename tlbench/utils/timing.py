"""Latency measurement a reviewer accepts: warm-up, device synchronisation, median of repeats."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def median_ms(fn: Callable[[], object], repeats: int = 30, warmup: int = 3, sync: Callable[[], None] | None = None) -> float:
    """Median wall time of ``fn()`` in milliseconds; ``sync`` runs after each call (CUDA)."""
    for _ in range(warmup):
        fn()
        if sync:
            sync()
    samples = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        fn()
        if sync:
            sync()
        samples.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(samples)
