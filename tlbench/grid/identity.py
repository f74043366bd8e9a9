"""The source model's identity: the one definition every cache keyed on a source model uses.

A cell's source model is determined by its spec's ``source_key`` (backbone and options, source
and its dataset options, target input, seed, the ``source_model`` settings) plus two things the
spec alone does not say: the backbone's input shape, and whether a slice of the source training
data is held out for a validator (the model then trains on less data). The source-model cache,
the grid's plan of source tasks and the transferability-score cache all key on this.
"""

from __future__ import annotations

from tlbench.grid.domains import DOMAIN_ADAPTATION
from tlbench.grid.options import selection_reads_source
from tlbench.training.selection import SOURCE_VAL_FRACTION, SOURCE_VAL_MAX


def needs_source_holdout(spec, registry) -> bool:
    """Hold out a source validation slice for this cell? When the validator that picks its
    checkpoint reads source data, or when it is a search trial of a domain-adaptation pair (every
    validator scores each trial)."""
    return selection_reads_source(spec.train, registry) or (bool(spec.trial) and spec.kind == DOMAIN_ADAPTATION)


def source_model_identity(spec, registry, shape=None) -> dict:
    """Everything the source model of ``spec`` depends on (``shape``: the backbone's input shape,
    left out when not yet known, as when a grid is planned)."""
    key = spec.source_key()
    if shape is not None:
        key["input_shape"] = list(shape)
    if needs_source_holdout(spec, registry):  # trained without the held-out slice
        key["source_val_holdout"] = [SOURCE_VAL_FRACTION, SOURCE_VAL_MAX]
    return key
