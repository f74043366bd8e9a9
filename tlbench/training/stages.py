"""Backbone depth: the backbone's parameters grouped into stages, from the input to the output.

Strategies that treat layers differently by depth (freezing the bottom, decaying learning rates
toward the input) use :func:`backbone_stages`. A backbone may declare its own stages with an
optional ``stages()`` method (or ``stages`` attribute) returning its blocks, input first, as
``nn.Module`` objects (``nn.Sequential`` views of existing submodules are fine; they need not be
registered children). Parameters no declared stage holds join the last stage. A backbone without
the convention is split in registration order: every module owning parameters is one unit (a
normalisation layer joins the unit before it; a multi-layer RNN gives one unit per layer), and the
units are cut into at most :data:`FALLBACK_STAGES` contiguous stages.
"""

from __future__ import annotations

import re

from torch import nn

FALLBACK_STAGES = 4
_NORMS = (
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm,
    nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d, nn.LayerNorm, nn.GroupNorm,
)
_RNN_LAYER = re.compile(r"_l(\d+)")


def declared_stages(backbone: nn.Module) -> list[nn.Module] | None:
    """The backbone's own ``stages()`` (method or attribute), or None when it has none."""
    stages = getattr(backbone, "stages", None)
    if callable(stages) and not isinstance(stages, nn.Module):
        stages = stages()
    if stages is None:
        return None
    stages = list(stages)
    if not stages or not all(isinstance(s, nn.Module) for s in stages):
        return None
    return stages


def _unique(params, seen: set) -> list[nn.Parameter]:
    out = []
    for p in params:
        if id(p) not in seen:
            seen.add(id(p))
            out.append(p)
    return out


def _units(backbone: nn.Module) -> list[list[nn.Parameter]]:
    """Parameters in registration order, one unit per owning module (see module docstring)."""
    units: list[list[nn.Parameter]] = []
    seen: set = set()
    for module in backbone.modules():
        own = _unique(module.parameters(recurse=False), seen)
        if not own:
            continue
        if isinstance(module, _NORMS) and units:
            units[-1].extend(own)
        elif isinstance(module, nn.RNNBase):
            by_layer: dict[int, list] = {}
            for name, p in module.named_parameters(recurse=False):
                if any(p is q for q in own):
                    match = _RNN_LAYER.search(name)
                    by_layer.setdefault(int(match.group(1)) if match else 0, []).append(p)
            units.extend(by_layer[k] for k in sorted(by_layer))
        else:
            units.append(own)
    return units


def _chunk(units: list[list], parts: int) -> list[list]:
    """Cut ``units`` into ``parts`` contiguous, nearly equal runs."""
    parts = max(1, min(parts, len(units)))
    bounds = [round(i * len(units) / parts) for i in range(parts + 1)]
    return [[p for unit in units[bounds[i] : bounds[i + 1]] for p in unit] for i in range(parts)]


def backbone_stages(backbone: nn.Module) -> list[list[nn.Parameter]]:
    """Every parameter of ``backbone`` exactly once, grouped into stages from input to output."""
    seen: set = set()
    declared = declared_stages(backbone)
    if declared is not None:
        groups = [_unique(stage.parameters(), seen) for stage in declared]
        leftover = _unique(backbone.parameters(), seen)
        groups = [g for g in groups if g]
        if leftover:
            if groups:
                groups[-1].extend(leftover)
            else:
                groups = [leftover]
        return groups
    units = _units(backbone)
    return [g for g in _chunk(units, FALLBACK_STAGES) if g] if units else []


def default_freeze(backbone: nn.Module, n_stages: int) -> int:
    """How many bottom stages ``partial`` freezes by default: the backbone's ``default_freeze``
    attribute when it has one, else half the stages rounded up (always leaving one to train)."""
    declared = getattr(backbone, "default_freeze", None)
    if isinstance(declared, int) and not isinstance(declared, bool) and 0 <= declared <= n_stages:
        return declared
    return max(0, min(n_stages - 1, (n_stages + 1) // 2))
