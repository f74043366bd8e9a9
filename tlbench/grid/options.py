"""Option tables (``[train]``, ``[set.NAME]``) checked against their defaults' types and ranges."""

from __future__ import annotations

import math

from tlbench.grid.spec import TRAIN_DEFAULTS, TRAIN_LIMITS
from tlbench.plugin.errors import UserError, closest_first
from tlbench.training.optim import RECIPE_CHOICES, RECIPE_DEFAULTS, RECIPE_LIMITS

def check_value(what: str, key: str, value, default):
    """Type-check one option against its default's type; ints are accepted for floats."""
    if default is None:
        return value
    expected = type(default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if expected is bool and not isinstance(value, bool):
        raise UserError(f"{what} option `{key}` must be true or false, got {value!r}")
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise UserError(f"{what} option `{key}` must be {expected.__name__} (like {default!r}), got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise UserError(f"{what} option `{key}` must be finite, got {value!r}")
    return value


def resolve_options(what: str, defaults: dict, given: dict) -> dict:
    """Defaults overridden by ``given``; unknown keys and wrong types are UserErrors."""
    if not isinstance(given, dict):
        raise UserError(f"options for {what} must be a table of NAME = VALUE")
    out = dict(defaults)
    for key, value in given.items():
        if key not in defaults:
            known = ", ".join(closest_first(key, defaults)) or "(it takes none)"
            raise UserError(f"{what} has no option {key!r}; known: {known}")
        out[key] = check_value(what, key, value, defaults[key])
    return out


def resolve_train(given: dict) -> dict:
    """Training settings with defaults, types and ranges checked."""
    train = resolve_options("train", TRAIN_DEFAULTS, given or {})
    for key, (low, high) in TRAIN_LIMITS.items():
        if not low <= train[key] <= high:
            raise UserError(f"train option `{key}` = {train[key]!r} is out of range; use {low}..{high}")
    check_recipe("train", train)
    from tlbench.deploy.verifiers import check_verify_with

    train["verify_with"] = check_verify_with(train["verify_with"])
    return train


def selection_reads_source(train: dict, registry) -> bool:
    """Check ``model_selection`` names ``last`` or a registered validator (the one that picks the
    checkpoint; tlbench.plugin.validator); True when that validator reads held-out source data."""
    name = train["model_selection"]
    if name == "last":
        return False
    if name not in registry.entries.get("validators", {}):
        known = ", ".join(["last", *closest_first(name, registry.names("validators"))])
        raise UserError(f"train option `model_selection` = {name!r} is not `last` or a validator; use one of {known}")
    return "source" in getattr(registry.get("validators", name).obj, "needs", ())


def check_recipe(what: str, settings: dict) -> None:
    """Recipe keys in ``settings`` (``[train]`` or a loss's options) have known choices, their
    defaults' types and in-range values; anything else is a one-line UserError."""
    for key, value in settings.items():
        if key not in RECIPE_DEFAULTS:
            continue
        check_value(what, key, value, RECIPE_DEFAULTS[key])
        if key in RECIPE_CHOICES and value not in RECIPE_CHOICES[key]:
            raise UserError(f"{what} option `{key}` = {value!r} is not one of {', '.join(RECIPE_CHOICES[key])}")
        low, high = RECIPE_LIMITS.get(key, TRAIN_LIMITS.get(key, (None, None)))
        if low is not None and not low <= value <= high:
            raise UserError(f"{what} option `{key}` = {value!r} is out of range; use {low}..{high}")
