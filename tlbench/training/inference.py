"""Forward passes over many rows, a slice at a time, with autograd off."""

from __future__ import annotations

from typing import Callable, TypeVar

import torch

T = TypeVar("T")


def map_batches(fn: Callable[[torch.Tensor], T], x, batch_size: int, *, inference: bool = True) -> list[T]:
    """``[fn(x[i:i + batch_size]) for each slice of x]`` with autograd off: under
    ``torch.inference_mode`` by default, under ``torch.no_grad`` with ``inference=False`` (for
    outputs that may later take part in autograd, as a validator fitting on features does).
    Eval mode is the caller's business."""
    with torch.inference_mode() if inference else torch.no_grad():
        return [fn(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
