"""BatchNorm statistics that match the weights they are stored with.

During training the running mean/variance are an exponential average over batches seen while
the weights kept moving; after a long or high-rate run they describe earlier weights, and the
eval-mode model the leaderboard reports (and ONNX exports) is a different function from the one
that trained. ``recalibrate`` recomputes them with the final weights as an exact average over
batches of the training mix; ``batch_statistics_accuracy`` measures the gap.
"""

from __future__ import annotations

import copy
from typing import Iterable

import torch
from tlbench.settings.train import EVAL_BATCH_SIZE
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def batchnorm_layers(model: nn.Module, only_training: bool = True) -> list[_BatchNorm]:
    """The BatchNorm layers that track running statistics (only those in train mode, i.e. not
    frozen by the strategy, when ``only_training``)."""
    return [m for m in model.modules()
            if isinstance(m, _BatchNorm) and m.track_running_stats and (m.training or not only_training)]


@torch.no_grad()
def recalibrate(model: nn.Module, layers: list[_BatchNorm], batches: Iterable[torch.Tensor], autocast=None) -> int:
    """Reset ``layers``' running statistics and recompute them as the plain average over
    ``batches`` (forward passes only; no weight changes; every other module in eval mode).
    Returns the number of examples seen; with no batches the statistics are left as they were."""
    batches = list(batches)
    if not layers or not batches:
        return 0
    modes = [(m, m.training) for m in model.modules()]
    momenta = [m.momentum for m in layers]
    model.eval()
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average = exact mean over the batches
        m.train()
    seen = 0
    try:
        for x in batches:
            if autocast is None:
                model(x)
            else:
                with autocast():
                    model(x)
            seen += len(x)
    finally:
        for m, momentum in zip(layers, momenta):
            m.momentum = momentum
        for m, training in modes:  # every module back in the mode it was in
            m.training = training
    return seen


@torch.no_grad()
def batch_statistics_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = EVAL_BATCH_SIZE,
                              companion: torch.Tensor | None = None) -> float | None:
    """Accuracy on ``(x, y)`` when every BatchNorm normalises with the statistics of the batch
    itself instead of the stored running ones. A model that trained on a mix of domains sees
    such a mix in every batch: pass the other domain's inputs as ``companion`` and each chunk of
    ``x`` is normalised together with an equal-size chunk of it (accuracy counts ``x``'s rows
    only). A copy of the model is used; nothing is changed. None when it has no BatchNorm."""
    probe = copy.deepcopy(model).eval()
    layers = batchnorm_layers(probe, only_training=False)
    if not layers:
        return None
    for m in layers:
        m.train()
        m.momentum = 0.0
    chunks = max(1, -(-len(x) // batch_size))  # near-equal chunks: no tiny trailing batch
    correct, offset = 0, 0
    for xb, yb in zip(torch.tensor_split(x, chunks), torch.tensor_split(y, chunks)):
        batch = xb
        if companion is not None and len(companion):
            index = torch.arange(offset, offset + len(xb), device=companion.device) % len(companion)
            batch = torch.cat([xb, companion[index]])
            offset += len(xb)
        correct += int((probe(batch)[: len(xb)].argmax(1) == yb).sum())
    return correct / max(1, len(y))
