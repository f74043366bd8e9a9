"""Option tables checked before anything trains: ``[train]`` against its typed settings
(tlbench/settings/train.py), ``[set.NAME]`` against each plugin's declared defaults, ranges and choices."""

from __future__ import annotations

from tlbench.plugin.errors import UserError, closest_first
from tlbench.settings import FieldSpec, TrainSettings, check_value, field_specs
from tlbench.plugin.validator import SOURCE
from tlbench.settings.train import LAST_STEP, RECIPE_KEYS

_SETTABLE = (bool, int, float, str)


def option_specs(what: str, defaults: dict, ranges: dict | None = None, choices: dict | None = None) -> dict[str, FieldSpec]:
    """One FieldSpec per plugin option: its type is its default's type (a ``None`` default takes any
    value), its bounds and choices what the plugin declares in ``option_ranges`` / ``option_choices``.
    Recipe keys (lr, optimizer, ...) in a loss's options follow the ``[train]`` field of that name."""
    train = field_specs(TrainSettings)
    specs = {}
    for key, default in defaults.items():
        if key in RECIPE_KEYS:
            specs[key] = train[key]
            continue
        low, high = (ranges or {}).get(key, (None, None))
        allowed = (choices or {}).get(key)
        kind = type(default) if isinstance(default, _SETTABLE) else None
        specs[key] = FieldSpec(key, kind, default, f"{what} option", low=low, high=high,
                               choices=None if allowed is None else tuple(allowed))
    return specs


def entry_option_specs(entry) -> dict[str, FieldSpec]:
    """The option specs of a registry entry (tlbench.plugin.registry.Entry)."""
    return option_specs(entry.label, entry.defaults, entry.option_ranges, entry.option_choices)


def resolve_options(what: str, defaults: dict, given: dict, specs: dict[str, FieldSpec] | None = None) -> dict:
    """Defaults overridden by ``given``; unknown keys, wrong types, out-of-range values and unknown
    choices are one-line UserErrors."""
    if not isinstance(given, dict):
        raise UserError(f"options for {what} must be a table of NAME = VALUE")
    specs = specs or option_specs(what, defaults)
    out = dict(defaults)
    for key, value in given.items():
        if key not in defaults:
            known = ", ".join(closest_first(str(key), defaults)) or "(it takes none)"
            raise UserError(f"{what} has no option {key!r}; known: {known}")
        out[key] = check_value(what, specs[key], value)
    return out


def resolve_entry_options(entry, given: dict) -> dict:
    """A plugin's options: its defaults overridden by ``given``, checked against what it declares."""
    return resolve_options(entry.label, entry.defaults, given, entry_option_specs(entry))


def resolve_train(given: dict) -> TrainSettings:
    """Training settings with defaults, types, ranges and choices checked."""
    from tlbench.deploy.verifiers import check_verify_with

    train = TrainSettings.from_dict(given or {})
    check_verify_with(train.verify_with)
    return train


def selection_reads_source(train: TrainSettings, registry) -> bool:
    """Check ``model_selection`` names ``last`` or a registered validator (the one that picks the
    checkpoint; tlbench.plugin.validator); True when that validator reads held-out source data."""
    name = train.model_selection
    if name == LAST_STEP:
        return False
    if name not in registry.entries.get("validators", {}):
        known = ", ".join([LAST_STEP, *closest_first(name, registry.names("validators"))])
        raise UserError(f"train option `model_selection` = {name!r} is not `last` or a validator; use one of {known}")
    return SOURCE in getattr(registry.get("validators", name).obj, "needs", ())


def check_recipe(what: str, settings: dict) -> None:
    """Recipe keys in ``settings`` (a loss's options) are checked like the ``[train]`` fields of the
    same name; anything else is left to the plugin's own specs."""
    specs = field_specs(TrainSettings)
    for key, value in settings.items():
        if key in RECIPE_KEYS:
            check_value(what, specs[key], value)
