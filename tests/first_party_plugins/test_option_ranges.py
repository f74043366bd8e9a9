"""Every first-party plugin option declares what it accepts, and the grid refuses anything else
before a model is built (issue 27)."""

import math

import pytest

from tlbench.grid.options import entry_option_specs, resolve_entry_options
from tlbench.plugin.errors import UserError

# Free-form strings: paths, URLs, model names and weight files, checked by each plugin (check_options or constructor).
FREE_FORM = {"data_root", "download_url", "weights", "checkpoint", "model"}


def _first_party(registry):
    for kind, entries in registry.entries.items():
        for name, entry in sorted(entries.items()):
            if entry.provenance.distribution == "tlbench":
                yield kind, name, entry


def _options(registry):
    return [(f"{kind}:{name}:{key}", entry, key, spec) for kind, name, entry in _first_party(registry)
            for key, spec in entry_option_specs(entry).items()]


def test_every_option_declares_a_range_or_choices(registry):
    undeclared = [label for label, _, key, spec in _options(registry)
                  if spec.type in (int, float, str) and key not in FREE_FORM
                  and spec.low is None and spec.high is None and spec.choices is None]
    assert not undeclared, undeclared
    assert len(_options(registry)) > 60  # the sweep really walked the plugins


def test_every_default_is_valid(registry):
    for label, entry, key, spec in _options(registry):
        assert resolve_entry_options(entry, {key: spec.default})[key] == spec.default, label


def _outside(spec):
    """Values just outside the declared range, of the option's own type."""
    out = []
    for bound, step in ((spec.low, -1), (spec.high, 1)):
        if bound is None:
            continue
        if spec.type is int:
            out.append(int(bound) + step)
        else:
            out.append(bound + step * max(abs(bound) * 1e-3, 1e-9))
    return out


def test_values_outside_a_range_or_choice_are_refused(registry):
    checked = 0
    for label, entry, key, spec in _options(registry):
        bad = _outside(spec) if spec.type in (int, float) else []
        if spec.choices is not None:
            bad.append("no-such-choice" if spec.type is str else None)
        for value in [v for v in bad if v is not None and (not isinstance(v, float) or math.isfinite(v))]:
            with pytest.raises(UserError, match=f"option `{key}`"):
                resolve_entry_options(entry, {key: value})
            checked += 1
    assert checked > 60


def test_out_of_range_options_named_by_the_issue_are_refused(registry):
    dann = registry.get("adaptation_losses", "dann")
    with pytest.raises(UserError, match=r"option `weight` = -1.0 is out of range; use 0.0\.\."):
        resolve_entry_options(dann, {"weight": -1})
    with pytest.raises(UserError, match=r"option `hidden` = 0 is out of range"):
        resolve_entry_options(dann, {"hidden": 0})
    with pytest.raises(UserError, match=r"option `decay` = 3.0 is out of range"):
        resolve_entry_options(registry.get("strategies", "discriminative-lr"), {"decay": 3.0})
    with pytest.raises(UserError, match=r"option `metric` = 'manhattan' is not one of cosine, euclidean"):
        resolve_entry_options(registry.get("estimators", "knn"), {"metric": "manhattan"})
