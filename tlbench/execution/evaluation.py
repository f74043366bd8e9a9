"""A cell's evaluation after training: each test split through the model once, and the
BatchNorm diagnostic on a capped, seeded subset.

- Eval-mode logits do not depend on how the rows are chunked, so on a CPU the passes take at
  most :data:`CPU_EVAL_ROWS` rows at a time (``eval_batch_size`` on a GPU): 512-row chunks fall
  out of the CPU caches (measured single-threaded per 1024 rows: smallcnn 1.2-1.5 s at 512 vs
  0.8-0.9 s at 128, efficientnet_lite0 2.4-2.9 vs 1.1-1.3, resnet18 and the sequence
  backbones alike or faster at 128).
- The target test logits are computed once: they give ``target_acc`` and are the torch
  reference the exported model is checked against (tlbench.execution.deployment).
- ``*_acc_batch_stats`` (accuracy with every BatchNorm normalising with the batch's own
  statistics) is a diagnostic of whether the stored statistics match the weights. It runs on at
  most :data:`BATCH_STATS_ROWS` test rows per domain (a seeded subset), in batches of
  ``eval_batch_size`` rows in all (half of them the other domain's when the statistics mixed
  both), and the ``evaluation`` record gives the rows used and the stored-statistics accuracy on
  those very rows, so the gap can be read like for like. Measured on a DANN smallcnn cell: the
  gap on 512 rows (0.4-0.6 points over four seeds) is the gap on all 1000 (0.5-0.6); on 256
  rows in one batch it ranged from -0.4 to 2.3 points.
"""

from __future__ import annotations

import time

import torch

from tlbench.training.batchnorm import batch_statistics_accuracy
from tlbench.training.loop import predict_logits
from tlbench.utils.seeds import Salt, seeded_generator

CPU_EVAL_ROWS = 128
BATCH_STATS_ROWS = 512  # test rows per domain
BATCH_STATS_SALT = int(Salt.BATCH_STATS)  # the subset's generator (recorded with the figures)


def eval_rows(batch_size: int, device) -> int:
    """Rows per eval-mode forward pass: ``batch_size``, at most CPU_EVAL_ROWS on a CPU."""
    return min(batch_size, CPU_EVAL_ROWS) if torch.device(device).type == "cpu" else batch_size


def _accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.argmax(1) == labels.to(logits.device)).float().mean())


def _subset(n: int, generator: torch.Generator) -> torch.Tensor | None:
    """Sorted indices of a seeded BATCH_STATS_ROWS-row subset of ``n`` rows (None: all of them)."""
    if n <= BATCH_STATS_ROWS:
        return None
    return torch.randperm(n, generator=generator)[:BATCH_STATS_ROWS].sort().values


def _rows(tensor, index):
    return tensor if index is None else tensor[index.to(tensor.device)]


def batch_stats(model, split, other, logits, bn_inputs: list[str], domain: str, batch_size: int,
                seed: int) -> tuple[float | None, dict | None]:
    """(accuracy on ``split`` of ``domain`` with BatchNorm statistics from test batches composed
    like the ones the stored statistics describe (``bn_inputs``: mixed with ``other`` when
    they mixed both domains), what was used). (None, None) when they never saw ``domain``,
    without BatchNorm, or for host-resident data. ``logits``: the eval-mode logits of ``split``."""
    domains = {"source" if name == "source" else "target" for name in bn_inputs}
    if domain not in domains or not isinstance(split.x, torch.Tensor) or not isinstance(other.x, torch.Tensor):
        return None, None
    generator = seeded_generator(seed, Salt.BATCH_STATS)
    index = _subset(len(split.x), generator)
    x, y = _rows(split.x, index), _rows(split.y, index)
    companion = _rows(other.x, _subset(len(other.x), generator)) if len(domains) == 2 else None
    # every normalising batch holds batch_size rows in all, companions included
    rows = max(1, batch_size // 2) if companion is not None else batch_size
    acc = batch_statistics_accuracy(model, x, y, rows, companion=companion)
    if acc is None:
        return None, None
    return acc, {"rows": len(y), "of": len(split.y), "stored_statistics_acc": _accuracy(_rows(logits, index), y)}


def evaluate_cell(model, target_test, source_test, bn_inputs: list[str], differ: bool, batch_size: int, device,
                  seed: int) -> tuple[dict, torch.Tensor, torch.Tensor | None]:
    """(the accuracy fields of result.json, the target test logits, the source test logits or None
    when the classes differ), logits on the CPU."""
    start = time.perf_counter()
    rows = eval_rows(batch_size, device)
    target_logits = predict_logits(model, target_test.x, rows)
    # the target head on source data means nothing when the classes differ
    source_logits = None if differ else predict_logits(model, source_test.x, rows)
    source_bs, source_info = (None, None) if differ else batch_stats(
        model, source_test, target_test, source_logits, bn_inputs, "source", batch_size, seed)
    target_bs, target_info = batch_stats(model, target_test, source_test, target_logits, bn_inputs, "target", batch_size, seed)
    fields = {
        "target_acc": _accuracy(target_logits, target_test.y),
        "source_acc": None if differ else _accuracy(source_logits, source_test.y),
        # the same model normalising with each test batch's own statistics: a large gap to
        # the stored statistics' accuracy means they do not match the weights
        "source_acc_batch_stats": source_bs,
        "target_acc_batch_stats": target_bs,
        "evaluation": {
            "seconds": round(time.perf_counter() - start, 4),
            "rows_per_pass": rows,
            "batch_stats": {"batch_rows": batch_size, "max_rows": BATCH_STATS_ROWS, "seed_salt": BATCH_STATS_SALT,
                            "source": source_info, "target": target_info},
        },
    }
    return fields, target_logits.cpu(), None if source_logits is None else source_logits.cpu()
