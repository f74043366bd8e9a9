"""A candidate's features (and source predictions) on the labeled target examples.

The candidate is the source model a grid cell starts from: a model trained on the source
domain (its head = the source classifier) or a backbone's pretrained weights (no trained head;
source predictions only when the backbone offers ``pretrained_logits(x)``, the logits of the
classifier it was pretrained with: tlbench.plugin.hookspecs.register_backbones). Only labeled
target training examples go in: the cell's shots, or the training split for ``all``.
"""

from __future__ import annotations

import numpy as np
import torch

from tlbench.plugin.contracts import Split
from tlbench.training.data import few_shot
from tlbench.training.inference import map_batches
from tlbench.training.model import build_model
from tlbench.utils.seeds import Salt, seeded_generator

# ``shots = all`` on a large split: a seeded subsample of this many examples keeps it cheap.
MAX_EXAMPLES = 2000
PRETRAINED_LOGITS = "pretrained_logits"  # the backbone method of the pretrained classifier's logits
BATCH = 256


def cell_generator(seed: int) -> torch.Generator:
    """The generator a grid cell draws its labeled shots with (:data:`Salt.TRANSFER`), so
    ``tlbench rank`` scores exactly the examples the cell fine-tunes on."""
    return seeded_generator(seed, Salt.TRANSFER)


def labeled_examples(target_train: Split, shots, seed: int) -> Split | None:
    """The labeled target examples of a cell with ``shots`` and ``seed`` (None for 0 shots)."""
    return few_shot(target_train, shots, cell_generator(seed))


def capped(split: Split, seed: int, limit: int = MAX_EXAMPLES) -> Split:
    """``split`` itself, or a seeded random ``limit`` of its rows when it is larger."""
    if len(split) <= limit:
        return split
    generator = torch.Generator().manual_seed(seed)
    index = torch.randperm(len(split), generator=generator)[:limit].sort().values
    return Split(split.x[index.to(split.y.device)], split.y[index.to(split.y.device)])


def candidate_model(backbone, shape, source_state: dict, num_source_classes: int, options: dict):
    """The source model (backbone + source head when ``source_state`` has one), in eval mode."""
    with torch.random.fork_rng(devices=[]):  # building must not move the cell's random stream
        model = build_model(backbone, shape, num_source_classes, options)
    has_head = any(k.startswith("head.") for k in source_state)
    model.load_state_dict(source_state, strict=has_head)
    model.has_source_head = has_head
    return model.eval()


def _pretrained_logits(backbone):
    method = getattr(backbone, PRETRAINED_LOGITS, None)
    return method if callable(method) else None


def extract(model, x, device) -> tuple[np.ndarray, np.ndarray | None]:
    """(features, source softmax or None) of every row of ``x``, float64 NumPy arrays."""
    model = model.to(device).eval()
    logits_of = model.head if model.has_source_head else None
    pretrained = None if logits_of is not None else _pretrained_logits(model.backbone)

    def step(batch):
        batch = batch.to(device).float()
        f = model.backbone(batch)
        logits = logits_of(f) if logits_of is not None else pretrained(batch) if pretrained is not None else None
        return f.double().cpu(), None if logits is None else torch.softmax(logits.double(), dim=1).cpu()

    parts = map_batches(step, x, BATCH)
    probs = [p for _, p in parts if p is not None]
    return torch.cat([f for f, _ in parts]).numpy(), (torch.cat(probs).numpy() if probs else None)
