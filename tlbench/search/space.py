"""Search spaces: what a plugin's ``search_space`` (or a grid's ``[search.space.NAME]``) may say,
checked at validation and turned into Optuna distributions.

One entry per option, next to the plugin's ``defaults`` (the default's type is the option's)::

    search_space = {
        "weight": {"low": 0.01, "high": 10.0, "log": True},   # float range, log scale
        "lr": {"low": 1e-4, "high": 1e-2, "log": True},
        "hidden": {"choices": [128, 256, 512]},               # categorical
        "kernel_num": {"low": 3, "high": 7},                  # int range (the default is an int)
    }

Keys: ``low``/``high`` (inclusive), optional ``log`` (true: sample the logarithm uniformly;
needs ``low > 0``), optional ``step`` (a grid of values), or ``choices`` (a non-empty list of
values of the option's type); ``distribution`` = ``"float" | "int" | "categorical"`` may be
given and must agree. Booleans and strings take ``choices`` only.
"""

from __future__ import annotations

import math

from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from tlbench.grid.options import option_specs
from tlbench.plugin.errors import UserError, closest_first
from tlbench.settings import FieldSpec, check_value

ENTRY_KEYS = ("low", "high", "log", "step", "choices", "distribution")
# [train] settings a search may vary (they apply to the transfer only; the cached source model
# is trained once per seed with the grid's [train] recipe).
SEARCHABLE_TRAIN = ("lr", "weight_decay", "momentum", "warmup")


def _number(what: str, key: str, name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UserError(f"{what} search space `{key}`: `{name}` must be a finite number, got {value!r}")
    return value


def _fits(value, default) -> bool:
    """Is ``value`` of the type of ``default`` (an int is fine for a float, a bool never for a number)?"""
    if default is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return type(value) is type(default)


def distribution(what: str, key: str, entry, spec: FieldSpec) -> BaseDistribution:
    """The Optuna distribution of one search-space ``entry`` for the option ``spec``; anything
    malformed, or any value outside the option's declared range or choices, is a one-line UserError."""
    default = spec.default
    if isinstance(entry, list):
        entry = {"choices": entry}
    if not isinstance(entry, dict):
        raise UserError(f"{what} search space `{key}` must be a table like {{low = 0.01, high = 1.0, log = true}} "
                        f"or {{choices = [...]}}, got {entry!r}")
    extra = [k for k in entry if k not in ENTRY_KEYS]
    if extra:
        raise UserError(f"{what} search space `{key}` has no setting {extra[0]!r}; use {', '.join(ENTRY_KEYS)}")
    kind = entry.get("distribution")
    if kind is not None and kind not in ("float", "int", "categorical"):
        raise UserError(f"{what} search space `{key}`: distribution {kind!r} is not one of float, int, categorical")
    numeric = isinstance(default, (int, float)) and not isinstance(default, bool)
    if "choices" in entry:
        if any(k in entry for k in ("low", "high", "log", "step")) or kind not in (None, "categorical"):
            raise UserError(f"{what} search space `{key}`: give either choices or low/high, not both")
        choices = entry["choices"]
        if not isinstance(choices, list) or not choices:
            raise UserError(f"{what} search space `{key}`: choices must be a non-empty list")
        for value in choices:
            if not _fits(value, default):
                raise UserError(f"{what} search space `{key}`: choice {value!r} is not a {type(default).__name__} "
                                f"like the default {default!r}")
            try:
                check_value(what, spec, value)
            except UserError as exc:
                raise UserError(f"{what} search space `{key}`: choice {value!r} is invalid ({exc})") from None
        return CategoricalDistribution(list(dict.fromkeys(choices)))
    if not numeric:
        raise UserError(f"{what} search space `{key}`: option {key!r} (default {default!r}) takes choices = [...], not a range")
    if "low" not in entry or "high" not in entry:
        raise UserError(f"{what} search space `{key}` needs low and high (or choices)")
    low, high = (_number(what, key, n, entry[n]) for n in ("low", "high"))
    if not low < high:
        raise UserError(f"{what} search space `{key}`: low {low!r} must be below high {high!r}")
    log = entry.get("log", False)
    if not isinstance(log, bool):
        raise UserError(f"{what} search space `{key}`: log must be true or false, got {log!r}")
    if log and low <= 0:
        raise UserError(f"{what} search space `{key}`: a log scale needs low > 0, got {low!r}")
    if (spec.low is not None and low < spec.low) or (spec.high is not None and high > spec.high):
        raise UserError(f"{what} search space `{key}`: {low!r}..{high!r} leaves the option's range; use {spec.describe_valid()}")
    step = entry.get("step")
    if step is not None:
        step = _number(what, key, "step", step)
        if step <= 0 or log:
            raise UserError(f"{what} search space `{key}`: step must be positive and cannot go with log")
    as_int = isinstance(default, int) if kind is None else kind == "int"
    if as_int != isinstance(default, int):
        raise UserError(f"{what} search space `{key}`: distribution {kind!r} does not fit the default {default!r}")
    if as_int:
        if not all(float(v).is_integer() for v in (low, high) + ((step,) if step else ())):
            raise UserError(f"{what} search space `{key}`: an int option needs whole low, high and step")
        return IntDistribution(int(low), int(high), log=log, step=int(step or 1))
    return FloatDistribution(float(low), float(high), log=log, step=None if step is None else float(step))


def parse_space(what: str, space, defaults: dict) -> dict[str, BaseDistribution]:
    """``{option: distribution}`` for a whole search space of a plugin (or of ``[train]``);
    ``defaults`` maps each option to its FieldSpec (or to a bare default: type checks only)."""
    if space is None:
        return {}
    specs = {k: v if isinstance(v, FieldSpec) else option_specs(what, {k: v})[k] for k, v in defaults.items()}
    if not isinstance(space, dict):
        raise UserError(f"{what} search space must be a table of OPTION = {{low, high, log}} or {{choices}}, got {space!r}")
    out = {}
    for key, entry in space.items():
        if key not in defaults:
            known = ", ".join(closest_first(key, defaults)) or "(it takes none)"
            raise UserError(f"{what} search space names no option {key!r}; options: {known}")
        out[key] = distribution(what, key, entry, specs[key])
    return out


def declared_space(entry) -> dict | None:
    """A registry entry's declared ``search_space`` (meta key, else class attribute), or None."""
    return entry.meta.get("search_space", getattr(entry.obj, "search_space", None))
