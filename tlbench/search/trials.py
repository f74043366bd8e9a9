"""``[search]`` / ``--search N``: each grid group's trials, as normal grid cells (RunSpecs).

A *group* is one (backbone, source, target, strategy, loss, shots); its search space is the
strategy's and the loss's declared ``search_space`` plus ``[search.space.train]`` (searchable
``[train]`` keys), where ``[search.space.NAME]`` replaces a plugin's declared space and options
the user fixed with ``--set NAME.OPTION=...`` are not searched. Every trial runs at every grid
seed (DomainBed's hparams seeds x trial seeds), so a validator can pick a trial per seed.

A trial's spec carries ``trial = {index, sampler, seed, params, train}``: ``params`` the sampled
values by ``NAME.OPTION``, ``train`` the sampled ``[train]`` keys (applied to the transfer
recipe only, so the cached source model is shared by every trial of a seed). The sampled plugin
options are the spec's options, so the run id follows from (search seed, sampler, trial index,
configuration) and a rerun finds the same cells.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from tlbench.grid.options import entry_option_specs
from tlbench.grid.spec import DEFAULT_RESULTS_DIR, RunSpec
from tlbench.plugin.errors import UserError, closest_first
from tlbench.search.sampling import PENDING, sample_configs
from tlbench.search.space import SEARCHABLE_TRAIN, declared_space, parse_space
from tlbench.settings import SearchSettings, TrainSettings, check_value, field_specs
from tlbench.settings.fields import build

ROLES = {"strategies": "strategy", "adaptation_losses": "loss"}


@dataclass(frozen=True)
class Search:
    """A validated ``[search]`` table: its typed settings and its ``[search.space.NAME]`` tables."""

    settings: SearchSettings
    space: dict = dataclasses.field(default_factory=dict)


def search_settings(config: dict, registry) -> Search | None:
    """The grid's ``[search]`` table validated (None when there is none); bad values are one line."""
    table = config.get("search")
    if table is None:
        return None
    if not isinstance(table, dict):
        raise UserError("`search` must be a table: [search] trials = 8, sampler = \"random\", seed = 0")
    scalars = {k: v for k, v in table.items() if k != "space"}
    settings = build(SearchSettings, "search", scalars)
    registry.get("validators", settings.objective)
    space = table.get("space", {})
    if not isinstance(space, dict) or not all(isinstance(v, dict) for v in space.values()):
        raise UserError("[search.space] must hold one table per plugin (or `train`), e.g. [search.space.dann] weight = {low = 0.1, high = 10.0, log = true}")
    return Search(settings, space)


def _fixed_options(config: dict) -> set[tuple[str, str]]:
    """(plugin name, option) pairs the user set explicitly: held fixed, never searched."""
    fixed = set()
    for name, options in (config.get("set") or {}).items():
        if not isinstance(options, dict):
            continue
        if name in ("strategy", "loss", "backbone", "dataset") and all(isinstance(v, dict) for v in options.values()):
            fixed |= {(sub, key) for sub, sub_options in options.items() for key in sub_options}
        else:
            fixed |= {(name, key) for key in options}
    return fixed


def group_space(spec: RunSpec, registry, search: Search, fixed: set) -> tuple[dict, dict]:
    """(distributions, defaults) by ``NAME.OPTION`` / ``train.KEY`` for the group of ``spec``."""
    distributions, defaults = {}, {}
    for kind, name, options in (("strategies", spec.strategy, spec.strategy_options),
                                ("adaptation_losses", spec.loss, spec.loss_options)):
        entry = registry.get(kind, name)
        what = f"{ROLES[kind]} {name!r}"
        space = search.space[name] if name in search.space else declared_space(entry)
        for key, dist in parse_space(what, space, entry_option_specs(entry)).items():
            if (name, key) not in fixed:
                distributions[f"{name}.{key}"], defaults[f"{name}.{key}"] = dist, options[key]
    train_space = search.space.get("train")
    train_specs = {k: field_specs(TrainSettings)[k] for k in SEARCHABLE_TRAIN}
    for key, dist in parse_space("train", train_space, train_specs).items():
        if ("train", key) not in fixed:
            distributions[f"train.{key}"], defaults[f"train.{key}"] = dist, getattr(spec.train, key)
    return distributions, defaults


def group_key(spec: RunSpec) -> tuple:
    return (spec.backbone, spec.source, spec.target, spec.strategy, spec.loss, spec.shots)


def group_seed(seed: int, key: tuple) -> int:
    """A per-group sampler seed derived from the search seed (stable across runs and machines)."""
    digest = hashlib.sha256(json.dumps([seed, list(map(str, key))]).encode()).hexdigest()
    return int(digest[:8], 16)


def trial_spec(spec: RunSpec, registry, search: Search, index: int, params: dict) -> RunSpec:
    """``spec`` with trial ``index``'s sampled ``params`` applied."""
    strategy, loss, train = dict(spec.strategy_options), dict(spec.loss_options), {}
    for name, value in params.items():
        plugin, _, key = name.partition(".")
        if plugin == "train":
            train[key] = check_value("train", field_specs(TrainSettings)[key], value)
        elif plugin == spec.strategy:
            strategy[key] = _checked(registry.get("strategies", plugin), key, value)
        else:
            loss[key] = _checked(registry.get("adaptation_losses", plugin), key, value)
    for kind, name, options in (("strategies", spec.strategy, strategy), ("adaptation_losses", spec.loss, loss)):
        check = registry.get(kind, name).meta.get("check_options")
        if callable(check):
            check(options)
    trial = {"index": index, "sampler": search.settings.sampler, "seed": search.settings.seed, "params": params, "train": train,
             "defaults": index == 0 and search.settings.defaults_first}
    return dataclasses.replace(spec, strategy_options=strategy, loss_options=loss, trial=trial)


def _check_space_names(search: Search, specs: list[RunSpec]) -> None:
    """Every ``[search.space.NAME]`` names ``train`` or a strategy or loss the grid uses."""
    used = dict.fromkeys(["train", *(s.strategy for s in specs), *(s.loss for s in specs)])
    for name in search.space:
        if name not in used:
            known = ", ".join(closest_first(str(name), used))
            raise UserError(f"[search.space.{name}] names no strategy or loss of this grid (searched: the strategy's and "
                            f"the loss's options, and train); use one of {known}, or drop it")


def _checked(entry, key: str, value):
    """A sampled value checked against the plugin's declared option spec."""
    return check_value(entry.label, entry_option_specs(entry)[key], value)


def _read_result(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _stored_record(results_dir: Path, spec: RunSpec) -> dict | None:
    """The stored result of ``spec`` (under today's run id or an earlier one), or None."""
    for dirname, run_id in zip(spec.stored_dirnames, spec.accepted_ids):
        record = _read_result(results_dir / dirname / "result.json")
        if record is not None and record.get("run_id") == run_id:
            return record
    return None


def trial_value(results_dir: Path, specs: list[RunSpec], objective: str):
    """A trial's objective: the mean of ``objective``'s score over its seeds' ok runs; None when
    every run failed or has no score; PENDING while any run has not finished."""
    scores = []
    for spec in specs:
        record = _stored_record(results_dir, spec)
        if record is None or record.get("status") not in ("ok", "failed"):
            return PENDING
        score = (record.get("validator_scores") or {}).get(objective)
        if record["status"] == "ok" and isinstance(score, (int, float)):
            scores.append(float(score))
    return sum(scores) / len(scores) if scores else None


def expand_search(config: dict, registry, specs: list[RunSpec], log=None) -> list[RunSpec]:
    """The grid's cells replaced by every group's trials (all seeds each); ``specs`` unchanged
    without a ``[search]`` table. With TPE only the trials whose configuration is known now."""
    search = search_settings(config, registry)
    if search is None:
        return specs
    fixed = _fixed_options(config)
    _check_space_names(search, specs)
    results_dir = Path(config.get("results_dir") or DEFAULT_RESULTS_DIR)
    maximize = registry.get("validators", search.settings.objective).obj.higher_is_better
    groups: dict[tuple, list[RunSpec]] = {}
    for spec in specs:
        groups.setdefault(group_key(spec), []).append(spec)
    out = []
    for key, members in groups.items():
        distributions, defaults = group_space(members[0], registry, search, fixed)
        if not distributions and log is not None:
            log(f"{' '.join(map(str, key))}: nothing to search (no search_space); one trial at the defaults")

        def value_of(index, params, members=members):
            return trial_value(results_dir, [trial_spec(s, registry, search, index, params) for s in members], search.settings.objective)

        configs = sample_configs(distributions, search.settings.trials, search.settings.sampler, group_seed(search.settings.seed, key),
                                 search.settings.startup, defaults if search.settings.defaults_first else None, value_of, maximize)
        for index, params in enumerate(configs):
            out.extend(trial_spec(s, registry, search, index, params) for s in members)
    return out


def total_trials(config: dict, registry, specs: list[RunSpec]) -> int | None:
    """How many trial cells the finished search will have (None without a search)."""
    search = search_settings(config, registry)
    if search is None:
        return None
    fixed = _fixed_options(config)
    groups: dict[tuple, list[RunSpec]] = {}
    for spec in specs:
        groups.setdefault(group_key(spec), []).append(spec)
    return sum(len(members) * (search.settings.trials if group_space(members[0], registry, search, fixed)[0] else 1)
               for members in groups.values())
