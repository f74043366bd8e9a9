"""Checks that need the expanded grid, run at the end of ``expand()`` before any training.

1. Every ``[set.NAME]`` table (``--set NAME.PARAM=VALUE``) names a plugin the grid uses: options
   for a loss, strategy, backbone or dataset that no cell runs are a mistake, not a no-op.
2. A dry run of every backbone: each distinct (backbone, options, input shape) is built once per
   process on the CPU, in eval mode and without gradients, and a two-example zero batch goes
   through it. A factory that raises, a module without a positive ``out_features``, or an output
   that is not ``(2, out_features)`` is a one-line ``UserError`` naming the backbone and the
   contract. A second pass with two different random examples (BatchNorm on batch statistics,
   so the check does not depend on untrained running averages) catches a backbone that ignores
   its input: identical features for different inputs, typically a feature map reduced to
   nothing by a small input.

The dry run costs one construction and two tiny forward passes per distinct backbone
configuration; results are cached for the process, so validating the same grid again is free.
"""

from __future__ import annotations

import json

from tlbench.grid.dataset_options import built_dataset
from tlbench.grid.domains import dataset_name, dataset_names
from tlbench.plugin.errors import UserError, first_line
from tlbench.plugin.registry import SINGULAR

# (factory, name, options json, input shape) -> None (passed) or the UserError message
_DRY_RUN_CACHE: dict[tuple, str | None] = {}
_ROLES = {"backbone": "backbones", "strategy": "strategies", "loss": "adaptation_losses", "dataset": "datasets"}
_LIST_OF_KIND = {"backbones": "backbone", "strategies": "strategy", "adaptation_losses": "loss"}


def check_grid(config: dict, registry, specs, built: dict | None = None) -> None:
    """The checks of this module, in order; ``built`` is expand's cache of built datasets."""
    check_set_tables_are_used(config, registry, specs)
    dry_run_backbones(registry, specs, built)


# -- 1. option tables for plugins the grid does not use ------------------------------------------

def _routed_names(config: dict, registry) -> list[tuple[str, str, str]]:
    """(kind, name, first option key) for every ``[set.*]`` table, routed as expand routes them."""
    sets = config.get("set") or {}
    if not isinstance(sets, dict):
        return []
    out = []
    for name, options in sets.items():
        if name in _ROLES and isinstance(options, dict) and options and all(isinstance(v, dict) for v in options.values()):
            out.extend((_ROLES[name], sub, next(iter(sub_options), "PARAM")) for sub, sub_options in options.items())
            continue
        kinds = [kind for kind in _ROLES.values() if name in registry.entries.get(kind, {})]
        if len(kinds) == 1:
            out.append((kinds[0], name, next(iter(options), "PARAM") if isinstance(options, dict) else "PARAM"))
    return out


def check_set_tables_are_used(config: dict, registry, specs) -> None:
    """UserError for ``--set NAME.PARAM=...`` / ``[set.NAME]`` when no grid cell uses NAME."""
    used = {
        "backbones": {s.backbone for s in specs},
        "strategies": {s.strategy for s in specs},
        "adaptation_losses": {s.loss for s in specs},
        "datasets": {d for s in specs for d in dataset_names(s.source) + dataset_names(s.target)},
    }
    for kind, name, key in _routed_names(config, registry):
        if name in used[kind]:
            continue
        grid_has = ", ".join(sorted(used[kind])) or "(none)"
        if kind == "datasets":
            plural, fix = "datasets", f"use a {name}:DOMAIN source or target, or drop the setting"
        else:
            flag = _LIST_OF_KIND[kind]
            plural = {"backbones": "backbones", "strategies": "strategies", "adaptation_losses": "losses"}[kind]
            fix = f"add --{flag} {name} or drop the setting"
        raise UserError(
            f"--set {name}.{key} ([set.{name}]) is for {SINGULAR[kind]} {name!r}, which is not in the grid; "
            f"the grid's {plural}: {grid_has}; {fix}"
        )


# -- 2. the backbone dry run ----------------------------------------------------------------------

def dry_run_backbones(registry, specs, built: dict | None = None) -> None:
    """Build every distinct backbone configuration of ``specs`` once and check its contract."""
    from tlbench.training.data import backbone_input_shape

    built = {} if built is None else built
    seen: set[tuple] = set()
    for spec in specs:
        target = dataset_name(spec.target)
        if target is None:
            continue
        entry = registry.get("backbones", spec.backbone)
        dataset = built_dataset(registry, target, spec.options_of_dataset(target), built)
        pre = getattr(dataset, "preprocessing", None)
        if pre is None or not hasattr(pre, "input_shape"):
            raise UserError(
                f"dataset {target!r} has no `preprocessing` (a tlbench.plugin.contracts.Preprocessing); "
                "a dataset must set it in its constructor"
            )
        options = dict(spec.backbone_options)
        try:
            shape = tuple(int(d) for d in backbone_input_shape(pre, entry.meta, options))
        except (TypeError, ValueError) as exc:
            raise UserError(f"cannot work out backbone {spec.backbone!r}'s input shape from dataset {target!r} "
                            f"preprocessing {pre.input_shape!r}: {first_line(exc)}") from None
        key = (entry.obj, entry.name, json.dumps(options, sort_keys=True, default=str), shape)
        if key in seen:
            continue
        seen.add(key)
        if key not in _DRY_RUN_CACHE:
            _DRY_RUN_CACHE[key] = _dry_run(entry, options, shape, pre.modality, spec.target)
        message = _DRY_RUN_CACHE[key]
        if message is not None:
            raise UserError(message)


def _layout(modality: str) -> str:
    return "(batch, C, H, W)" if modality == "image" else "(batch, time, features)" if modality == "sequence" else "(batch, *input_shape)"


def _fixes(name: str, options: dict, shape: tuple, modality: str) -> str:
    """What to try when a backbone fails on, or ignores, a small image input ('' otherwise)."""
    if modality != "image" or len(shape) != 3 or min(shape[1:]) >= 64:
        return ""
    hints = []
    if "input_size" in options:
        hints.append(f"--set {name}.input_size=64 (resize the inputs)")
    if "small_input_stem" in options and not options.get("small_input_stem"):
        hints.append(f"--set {name}.small_input_stem=true (keep resolution in the stem)")
    if not hints:
        hints.append("a larger input (the dataset's size option) or another backbone")
    return "; try " + " or ".join(hints)


def _dry_run(entry, options: dict, shape: tuple, modality: str, target: str) -> str | None:
    """None when the backbone passes, else the one-line message."""
    import torch
    from torch import nn

    name = entry.name
    where = f"on {target} input {shape}"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        try:
            module = entry.obj(tuple(shape), **options)
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 - a plugin's factory may raise anything
            return f"backbone {name!r} with options {options} cannot be built {where}: {first_line(exc)}"
        if not isinstance(module, nn.Module):
            return (f"backbone {name!r} factory returned {type(module).__name__}, not an nn.Module; a backbone factory "
                    "must return an nn.Module with an integer `out_features`")
        out_features = getattr(module, "out_features", None)
        if isinstance(out_features, bool) or not isinstance(out_features, int) or out_features <= 0:
            return (f"backbone {name!r} has no positive integer `out_features` (got {out_features!r}); a backbone must "
                    f"declare out_features and map {_layout(modality)} to (batch, out_features)")
        module = module.to("cpu").eval()
        contract = f"a backbone must map {_layout(modality)} to (batch, out_features)"
        try:
            with torch.no_grad():
                out = module(torch.zeros(2, *shape))
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001
            return (f"backbone {name!r} failed on a two-example batch {where}: {first_line(exc)}; "
                    f"{contract}{_fixes(name, options, shape, modality)}")
        if not isinstance(out, torch.Tensor):
            return f"backbone {name!r} returned {type(out).__name__}, not a tensor, {where}; {contract}"
        if tuple(out.shape) != (2, out_features):
            return (f"backbone {name!r} returned shape {tuple(out.shape)} but declares out_features={out_features} "
                    f"(input (2, {', '.join(map(str, shape))})); {contract}")
        return _collapse(module, name, options, shape, modality, where)


def _collapse(module, name: str, options: dict, shape: tuple, modality: str, where: str) -> str | None:
    """A message when two different inputs give the same features (the input is ignored)."""
    import torch
    from torch import nn

    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for norm in norms:  # batch statistics: independent of untrained running averages
        norm.train()
    try:
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(2, *shape, generator=generator)
        with torch.no_grad():
            out = module(x)
    except Exception:  # noqa: BLE001 - a module that only runs in eval mode: shape was fine, skip this check
        return None
    finally:
        for norm in norms:
            norm.eval()
    if not isinstance(out, torch.Tensor) or out.shape[0] != 2 or not out.is_floating_point():
        return None
    if not torch.isfinite(out).all():
        return (f"backbone {name!r} returned non-finite features (NaN/inf) for random inputs {where}; "
                "check its normalisation and initialisation")
    scale = float(out.abs().max())
    if float((out[0] - out[1]).abs().max()) <= 1e-6 * max(scale, 1e-6):
        return (f"backbone {name!r} returns the same features for different inputs {where}: it ignores its input "
                f"(e.g. the feature map shrinks to nothing at this size){_fixes(name, options, shape, modality)}")
    return None
