"""The transferability-estimator contract: score a model for a target before any fine-tuning.

An estimator plugin registers a subclass of :class:`Estimator` with ``register_estimators``::

    from tlbench import hookimpl
    from tlbench.plugin.estimator import Estimator

    class Separation(Estimator):
        '''Between-class over within-class spread of the features.'''

        defaults = {"eps": 1e-9}

        def score(self, features, labels, source_probs=None):
            ...
            return float(value)

    @hookimpl
    def register_estimators(register):
        register("separation", Separation)

What the core hands to ``score`` (all NumPy arrays, float64 / int64):

- ``features``: ``(n, d)`` penultimate-layer features of the candidate model (its backbone's
  output, the model in eval mode) on ``n`` labeled target examples;
- ``labels``: ``(n,)`` target labels ``0..C-1`` of those examples. They come from the labeled
  shots a grid cell trains on (``--shots K``) or from the target training split
  (``--shots all``), never from the target test split;
- ``source_probs``: ``(n, S)`` the source model's softmax over its own ``S`` source classes
  on the same examples (for a pretrained source: the softmax of the backbone's
  ``pretrained_logits(x)``), or None when the candidate has no source classifier (a
  pretrained backbone without ``pretrained_logits``). An estimator that cannot work without them sets
  ``needs_source_predictions = True``; the core then records it as not applicable instead of
  calling it with None.

``score`` returns one float, **higher = the model should transfer better**; a score only
compares candidates on the same target and labeled examples, never across targets. Raising
is allowed (a degenerate input): the core records the error for that estimator and goes on.
Hyperparameters are declared in ``defaults`` (shown by ``tlbench plugins NAME``, set with
``tlbench rank --set NAME.OPTION=VALUE``) and arrive as ``self.hparams``.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np


class Estimator:
    """Base class of transferability estimators (see the module docstring for the contract)."""

    defaults: ClassVar[dict] = {}
    # True: ``score`` needs ``source_probs`` (LEEP, NCE); candidates without a source
    # classifier get no score from it (recorded as not applicable).
    needs_source_predictions: ClassVar[bool] = False

    def __init__(self, **hparams):
        self.hparams = {**type(self).defaults, **hparams}

    def score(self, features: np.ndarray, labels: np.ndarray, source_probs: np.ndarray | None = None) -> float:
        """The transferability score of these features for these labels; higher is better."""
        raise NotImplementedError

