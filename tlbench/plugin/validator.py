"""The validator contract: unsupervised model selection as a plugin kind.

A validator scores one trained model (a checkpoint, or a finished search trial) from what a
practitioner really has after adapting to an unlabeled target: a held-out slice of the labeled
source training data and the unlabeled target training inputs. The core runs the model over
those inputs once and hands the validator its features and logits in a
:class:`ValidationInputs`; the validator returns one number and says, through
``higher_is_better``, which direction is good. Checkpoints and search trials are picked by it.

Only a validator that declares ``reads_target_test_labels = True`` (the first-party
``target-oracle``) is given the target test split; every table labels its picks as an oracle's.

A minimal validator::

    from tlbench import hookimpl
    from tlbench.plugin.validator import Validator

    class MeanConfidence(Validator):
        \"\"\"Mean top-1 probability on unlabeled target data.\"\"\"

        needs = ("target",)

        def score(self, inputs):
            return float(inputs.target_logits.softmax(1).max(1).values.mean())

    @hookimpl
    def register_validators(register):
        register("confidence", MeanConfidence)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

# What a validator may ask for (its ``needs``):
SOURCE = "source"  # features, logits and labels of the held-out labeled source slice
TARGET = "target"  # features and logits of the unlabeled target training inputs
TARGET_TEST = "target_test"  # logits and labels of the target TEST split: oracles only
INPUT_KINDS = (SOURCE, TARGET, TARGET_TEST)


@dataclass
class ValidationInputs:
    """What a validator sees about one model. Fields a validator did not ask for are None.

    Features are the backbone's outputs (``(n, out_features)``), logits the head's
    (``(n, num_classes)``), both computed in eval mode without gradients. ``generator`` is
    seeded per run, for validators that subsample or fit something (DEV's domain classifier).
    """

    source_features: Tensor | None = None
    source_logits: Tensor | None = None
    source_labels: Tensor | None = None
    target_features: Tensor | None = None
    target_logits: Tensor | None = None
    target_test_logits: Tensor | None = None
    target_test_labels: Tensor | None = None
    generator: torch.Generator | None = None


class Validator:
    """Base class of validators (``register_validators``).

    Class attributes:

    - ``higher_is_better``: True when a larger score means a better model (accuracy, IM, SND);
      False for risks and entropies (DEV, entropy). Selection follows it.
    - ``needs``: which inputs ``score`` reads, from ``"source"`` (held-out labeled source),
      ``"target"`` (unlabeled target train) and ``"target_test"``; the core computes only
      those. A validator that needs ``"source"`` has no score on cells without source data of
      the target's classes (pretrained sources, task transfer); its score is None there.
    - ``reads_target_test_labels``: True only for an oracle; only then is ``"target_test"``
      filled in, and reports mark the validator as one.
    - ``defaults``: hyperparameters, passed as keywords and kept in ``self.hparams``.

    ``score(inputs)`` returns a finite float; raising marks only this validator's score as
    failed for the run (recorded, the run goes on).
    """

    higher_is_better: ClassVar[bool] = True
    needs: ClassVar[tuple[str, ...]] = (SOURCE, TARGET)
    reads_target_test_labels: ClassVar[bool] = False
    defaults: ClassVar[dict] = {}

    def __init__(self, **hparams):
        self.hparams = {**type(self).defaults, **hparams}

    def score(self, inputs: ValidationInputs) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def describe(cls) -> dict:
        """JSON-ready facts recorded next to the scores (direction, inputs, oracle or not)."""
        return {"higher_is_better": bool(cls.higher_is_better), "needs": list(cls.needs),
                "oracle": bool(cls.reads_target_test_labels)}


def entropy(logits: Tensor) -> Tensor:
    """Shannon entropy (nats) of softmax(``logits``) per row; exactly 0 for one-hot rows."""
    logp = torch.log_softmax(logits.float(), dim=1)
    return -(logp.exp() * logp).nan_to_num(0.0).sum(1)
