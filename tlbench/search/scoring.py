"""Validators at work in a run: the checkpoint selector and the scores recorded in result.json.

The model runs once over the inputs the validators ask for (tlbench.plugin.validator): the
held-out labeled source slice, the unlabeled target training inputs and, for an oracle only,
the target test split. A validator is never handed what it did not declare, and only one that
declares ``reads_target_test_labels`` is handed target test data.
"""

from __future__ import annotations

import torch

from tlbench.plugin.scoring import NotApplicable, score_each
from tlbench.plugin.validator import SOURCE, TARGET, TARGET_TEST, ValidationInputs
from tlbench.training.inference import map_batches
from tlbench.training.selection import make_selector
from tlbench.utils.seeds import Salt, seeded_generator
from tlbench.settings.train import LAST_STEP

ORACLE = "target-oracle"  # the validator that reads target test labels (plugins/validators/prediction.py)


def _generator(seed: int) -> torch.Generator:
    return seeded_generator(seed, Salt.VALIDATORS)


def features_and_logits(model, x, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Backbone features and head logits of every row of ``x`` (eval mode, no gradients; not
    inference tensors: a validator may fit on them)."""
    def both(batch):
        f = model.backbone(batch)
        return f.float(), model.head(f).float()

    parts = map_batches(both, x, batch_size, inference=False)
    if not parts:
        return torch.empty(0), torch.empty(0)
    return torch.cat([f for f, _ in parts]), torch.cat([logits for _, logits in parts])


def validation_inputs(model, needs, source_val, target_x, target_test, batch_size: int, seed: int) -> ValidationInputs | None:
    """What a validator with ``needs`` sees of ``model``; None when an input it needs is missing
    (no held-out source slice, say, or ``target_x`` None: the target's inputs are withheld)."""
    if ((SOURCE in needs and (source_val is None or len(source_val) == 0)) or (TARGET_TEST in needs and target_test is None)
            or (TARGET in needs and target_x is None)):
        return None
    modes = {m: m.training for m in model.modules()}
    model.eval()
    inputs = ValidationInputs(generator=_generator(seed))
    try:
        if SOURCE in needs:
            inputs.source_features, inputs.source_logits = features_and_logits(model, source_val.x, batch_size)
            inputs.source_labels = source_val.y
        if TARGET in needs:
            inputs.target_features, inputs.target_logits = features_and_logits(model, target_x, batch_size)
        if TARGET_TEST in needs:
            inputs.target_test_logits = features_and_logits(model, target_test.x, batch_size)[1]
            inputs.target_test_labels = target_test.y
    finally:
        for module, training in modes.items():
            module.train(training)
    return inputs


def _validator(entry):
    cls = entry.obj
    return cls(), set(getattr(cls, "needs", ())) - ({TARGET_TEST} if not getattr(cls, "reads_target_test_labels", False) else set())


def score_function(entry, source_val, target_x, target_test, batch_size: int, seed: int):
    """``score(model)`` of one validator entry (for the checkpoint selector)."""
    validator, needs = _validator(entry)
    oracle_test = target_test if getattr(entry.obj, "reads_target_test_labels", False) else None

    def score(model) -> float:
        inputs = validation_inputs(model, needs, source_val, target_x, oracle_test, batch_size, seed)
        if inputs is None:
            raise ValueError(f"validator {entry.name!r} needs {', '.join(sorted(needs))}, which this run does not have")
        return float(validator.score(inputs))
    return score


def checkpoint_selector(spec, registry, source_val, target_x, target_test):
    """The selector of ``model_selection`` (None for ``last``): its validator scores checkpoints."""
    name = spec.train.model_selection
    if name == LAST_STEP:
        return None
    entry = registry.get("validators", name)
    score = score_function(entry, source_val, target_x, target_test, spec.train.eval_batch_size, spec.seed)
    oracle = None
    if spec.train.selection_oracle and not getattr(entry.obj, "reads_target_test_labels", False):
        oracle = score_function(registry.get("validators", ORACLE), source_val, target_x, target_test,
                                spec.train.eval_batch_size, spec.seed)
    return make_selector(spec.train, score, bool(getattr(entry.obj, "higher_is_better", True)), oracle)


def score_validators(registry, model, source_val, target_x, target_test, batch_size: int, seed: int) -> dict:
    """Every registered validator's score of the finished ``model`` for result.json:
    ``validator_scores`` (name -> float, or None when it lacks an input or failed) and
    ``validators`` (name -> direction, inputs, oracle flag, provenance, and ``missing`` or
    ``error`` when there is no score)."""
    cache: dict[frozenset, ValidationInputs | None] = {}

    def score_one(name):
        validator, needs = _validator(registry.get("validators", name))
        key = frozenset(needs)
        if key not in cache:
            cache[key] = validation_inputs(model, needs, source_val, target_x, target_test, batch_size, seed)
        if cache[key] is None:
            if TARGET in needs and target_x is None:
                raise NotApplicable("needs the target's training inputs, which this cell withholds (domain generalisation)")
            raise NotApplicable("needs held-out source data of the target's classes")
        cache[key].generator = _generator(seed)  # each validator starts from the same random state
        return validator.score(cache[key])

    scored = score_each(registry.names("validators"), score_one)
    about = {}
    for name, outcome in scored.items():
        entry = registry.get("validators", name)
        about[name] = {**entry.obj.describe(), "plugin": entry.provenance.plugin} if hasattr(entry.obj, "describe") else {}
        if outcome.why is not None:
            about[name]["missing" if not outcome.applicable else "error"] = outcome.why
    return {"validator_scores": {name: outcome.value for name, outcome in scored.items()}, "validators": about}
