"""Settings fields with metadata, and the rules that read it.

A settings table is a frozen dataclass whose every field is made with :func:`setting`. The field's
metadata says its valid range or choices, a one-line doc, whether it changes results and whether
it belongs to the source model. From that metadata alone come:

* validation (type, finiteness, range, choices) — :func:`check_value`, :func:`build`;
* the run id — :func:`run_id_view`. A field that changes results is hashed; one added after the
  first release (``in_v1_ids=False``) only when it differs from its default, so adding a setting
  never changes an existing run id. A field that does not change results (a speed knob) is never
  hashed — or, if the first run ids already held it, hashed at its default whatever its value,
  so those ids stay valid; :func:`legacy_run_id_view` gives the first release's view, so a grid
  run then with a speed knob off its default is still found finished;
* the source-model key — :func:`source_view`, by the same rule over ``source_model`` fields;
* the generated settings reference (tlbench/grid/settings_doc.py).
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from functools import cache

from tlbench.plugin.errors import UserError, closest_first

_META_KEY = "tlbench"


@dataclass(frozen=True)
class FieldSpec:
    """Everything declared about one setting."""

    name: str
    type: type
    default: typing.Any
    doc: str
    low: float | None = None
    high: float | None = None
    choices: tuple | None = None
    changes_results: bool = True
    in_v1_ids: bool = False
    source_model: bool = False
    group: str = ""  # a named subset of a table's fields (``recipe``: the optimizer recipe)

    def bounds(self) -> str:
        """``low..high``, ``>= low`` or ``<= high``."""
        if self.low is not None and self.high is not None:
            return f"{self.low!r}..{self.high!r}"
        return f">= {self.low!r}" if self.low is not None else f"<= {self.high!r}"

    def describe_valid(self) -> str:
        """The valid values in words (for errors and the reference)."""
        if self.choices is not None:
            return "one of " + ", ".join(map(str, self.choices))
        if self.type is bool:
            return "true or false"
        if self.low is not None or self.high is not None:
            return f"{self.type.__name__} {self.bounds()}"
        return self.type.__name__


def setting(default, doc: str, *, low=None, high=None, choices=None, changes_results: bool = True,
            in_v1_ids: bool = False, source_model: bool = False, group: str = ""):
    """A dataclass field carrying a setting's metadata (see the module docstring)."""
    meta = {"doc": doc, "low": low, "high": high, "choices": None if choices is None else tuple(choices),
            "changes_results": changes_results, "in_v1_ids": in_v1_ids, "source_model": source_model, "group": group}
    return dataclasses.field(default=default, metadata={_META_KEY: meta})


@cache
def field_specs(cls) -> dict[str, FieldSpec]:
    """``{name: FieldSpec}`` of a settings dataclass, in declaration order; a field made without
    :func:`setting` (no doc, no metadata) is a programming error."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        meta = f.metadata.get(_META_KEY)
        if meta is None or not meta.get("doc"):
            raise TypeError(f"{cls.__name__}.{f.name} has no setting metadata; declare it with setting(default, doc, ...)")
        kind = hints[f.name]
        if kind not in (bool, int, float, str):
            raise TypeError(f"{cls.__name__}.{f.name}: settings are bool, int, float or str, not {kind}")
        out[f.name] = FieldSpec(f.name, kind, f.default, **meta)
    return out


def check_value(what: str, spec: FieldSpec, value):
    """``value`` checked against ``spec`` (ints accepted for floats; any value when ``spec.type`` is
    None, a plugin option whose default is None); a one-line UserError otherwise."""
    if spec.type is None:
        return value
    where = f"{what} option `{spec.name}`"
    if spec.type is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if spec.type is bool and not isinstance(value, bool):
        raise UserError(f"{where} must be true or false, got {value!r}")
    if not isinstance(value, spec.type) or (spec.type is int and isinstance(value, bool)):
        raise UserError(f"{where} must be {spec.type.__name__} (like {spec.default!r}), got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise UserError(f"{where} must be finite, got {value!r}")
    if spec.choices is not None and value not in spec.choices:
        raise UserError(f"{where} = {value!r} is not one of {', '.join(map(str, spec.choices))}")
    low, high = spec.low, spec.high
    if (low is not None and value < low) or (high is not None and value > high):
        raise UserError(f"{where} = {value!r} is out of range; use {spec.bounds()}")
    return value


class Validated:
    """Base of a settings dataclass: every field is checked against its metadata on construction
    (``TrainSettings(steps=-5)`` fails as ``--set train.steps=-5`` does); ints given for floats
    become floats. ``SECTION`` names the table in errors."""

    SECTION = "settings"

    def __post_init__(self):
        for name, spec in field_specs(type(self)).items():
            value = check_value(self.SECTION, spec, getattr(self, name))
            if value is not getattr(self, name):
                object.__setattr__(self, name, value)


def build(cls, what: str, given: dict, base=None):
    """An instance of ``cls`` from ``base`` (or the defaults) overridden by ``given``; unknown keys,
    wrong types and out-of-range values are one-line UserErrors."""
    if not isinstance(given, dict):
        raise UserError(f"{what} must be a table of NAME = VALUE")
    specs = field_specs(cls)
    values = {}
    for key, value in given.items():
        if key not in specs:
            raise UserError(f"{what} has no option {key!r}; known: {', '.join(closest_first(str(key), specs))}")
        values[key] = check_value(what, specs[key], value)
    return dataclasses.replace(base, **values) if base is not None else cls(**values)


def _identity_view(settings, include) -> dict:
    out = {}
    for name, spec in field_specs(type(settings)).items():
        value = getattr(settings, name)
        if not include(spec):
            continue
        if spec.changes_results:
            if spec.in_v1_ids or value != spec.default:
                out[name] = value
        elif spec.in_v1_ids:
            out[name] = spec.default  # kept in the id, at its default, so first-release ids stay valid
    return out


def legacy_run_id_view(settings) -> dict:
    """The fields the first release hashed: every first-release field at its value, every later one
    only when it differs from its default. Results written then carry ids made from this view; a grid
    accepts them as finished (see ``RunSpec.accepted_ids``) although today's ids leave speed knobs out."""
    out = {}
    for name, spec in field_specs(type(settings)).items():
        value = getattr(settings, name)
        if spec.in_v1_ids or value != spec.default:
            out[name] = value
    return out


def predating_fields(cls, stored: dict) -> list[str]:
    """The settings of ``cls`` that change results and are hashed in every run id, yet are absent
    from a stored table: a result written before they existed. Its numbers came from other code,
    so its id matches no cell today and the cell runs again (never resumed from it)."""
    return [name for name, spec in field_specs(cls).items()
            if spec.changes_results and spec.in_v1_ids and name not in stored]


def run_id_view(settings) -> dict:
    """The fields of ``settings`` that enter the run id, by the rules in the module docstring."""
    return _identity_view(settings, lambda spec: True)


def source_view(settings) -> dict:
    """The fields of ``settings`` that determine the source model (same rules, ``source_model`` fields)."""
    return _identity_view(settings, lambda spec: spec.source_model)
