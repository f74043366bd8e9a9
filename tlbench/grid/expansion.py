"""Grid configuration -> validated list of RunSpec. All validation happens here, before training.

The same keys come from a TOML grid file and from command-line flags (flags win)::

    backbone = ["smallcnn"]          # --backbone smallcnn,resnet18
    source   = ["digits:mnist"]      # --source digits:mnist
    target   = ["digits:uci"]        # --target digits:uci
    strategy = ["finetune"]          # --strategy scratch,finetune
    loss     = ["none"]              # --loss none,dann
    shots    = [10]                  # --shots 1,10,all   (per class; 0 = unlabeled target)
    seeds    = [0]                   # --seeds 0,1
    results_dir = "results/runs"     # --results-dir DIR
    device   = "auto"                # --device cpu|cuda|cuda:1|auto
    executor = "local"               # --executor local|processes|ray  (tlbench/execution/contract.py)
    workers  = 2                     # --workers N; devices = ["cuda:0", "cuda:1"]; ray_address = "auto"
    threads  = 1                     # --threads N  (torch CPU threads per task)
    [train]                          # --set train.steps=200
    [set.l2sp]                       # --set l2sp.alpha=0.01  (plugin hyperparameters)
"""

from __future__ import annotations

import itertools

from tlbench.grid.dataset_options import check_domain, label_space, resolve_dataset_options
from tlbench.grid.domains import (
    DOMAIN_ADAPTATION, DOMAIN_GENERALISATION, PRETRAINED_KIND, TASK_TRANSFER, DomainRef, canonical_source, dataset_names,
    is_pretrained, parse_domain, source_parts,
)
from tlbench.grid.leave_one_out import apply_leave_one_out
from tlbench.grid.options import check_recipe, resolve_entry_options, resolve_train, selection_reads_source
from tlbench.grid.spec import KNOWN_KEYS, LIST_KEYS, PLUGIN_KINDS, RunSpec
from tlbench.plugin.errors import UserError, unknown
from tlbench.plugin.registry import Registry

MAX_SHOTS = 1_000_000


def _as_list(config: dict, key: str) -> list:
    value = config.get(key)
    if value is None:
        raise UserError(f"grid needs `{key}` (a list, or the --{key} flag)")
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list):
        raise UserError(f"grid key `{key}` must be a list, got {type(value).__name__}")
    if not value:
        raise UserError(f"grid key `{key}` is an empty list; give at least one value")
    return value


def _parse_shots(values: list) -> list:
    out = []
    for value in values:
        if isinstance(value, str) and value.strip().lower() == "all":
            out.append("all")
            continue
        try:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            shots = int(value)
        except (TypeError, ValueError):
            raise UserError(f"shots {value!r} is not a whole number or 'all' (e.g. --shots 0,10,all)") from None
        if not 0 <= shots <= MAX_SHOTS:
            raise UserError(f"shots {shots} is out of range; use 0..{MAX_SHOTS} per class, or 'all'")
        out.append(shots)
    return list(dict.fromkeys(out))


def _parse_seeds(values: list) -> list[int]:
    out = []
    for value in values:
        try:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            seed = int(value)
        except (TypeError, ValueError):
            raise UserError(f"seed {value!r} is not a whole number (e.g. --seeds 0,1,2)") from None
        if not 0 <= seed < 2**31:
            raise UserError(f"seed {seed} is out of range; use 0..{2**31 - 1}")
        out.append(seed)
    return list(dict.fromkeys(out))


def _plugin_options(registry: Registry, sets: dict, used: dict[str, list[str]]) -> dict[tuple[str, str], dict]:
    """Route ``[set.NAME]`` tables to the plugin called NAME (``[set.KIND.NAME]`` disambiguates)."""
    if not isinstance(sets, dict):
        raise UserError("`set` must be a table of plugin names, e.g. [set.l2sp] alpha = 0.01")
    routed: dict[tuple[str, str], dict] = {}
    all_names = {n for kind in PLUGIN_KINDS.values() for n in registry.names(kind)}
    for name, options in sets.items():
        if name in PLUGIN_KINDS and isinstance(options, dict) and all(isinstance(v, dict) for v in options.values()):
            for sub, sub_options in options.items():
                registry.get(PLUGIN_KINDS[name], sub)
                routed[(PLUGIN_KINDS[name], sub)] = sub_options
            continue
        kinds = [kind for kind in PLUGIN_KINDS.values() if name in registry.entries[kind]]
        if not kinds and name in registry.entries.get("estimators", {}):  # grid cells score with defaults
            raise UserError(f"`set.{name}`: grid cells score with estimator {name!r}'s defaults; set its options "
                            f"in `tlbench rank --set {name}.OPTION=VALUE`, or drop the setting")
        if not kinds:
            raise unknown("plugin in `set`", name, all_names)
        if len(kinds) > 1:
            raise UserError(f"`set.{name}` is ambiguous ({', '.join(kinds)}); write set.<kind>.{name}")
        routed[(kinds[0], name)] = options
    return routed


def _split_domain(value, registry: Registry, role: str, data_opts=None, built=None) -> DomainRef:
    ref = parse_domain(value, role)
    registry.get("datasets", ref.dataset)
    options = (data_opts or {}).get(ref.dataset, {})
    check_domain(registry, ref.dataset, ref.domain, options, {} if built is None else built)
    return ref


def expand(config: dict, registry: Registry) -> list[RunSpec]:
    """Validate a merged grid configuration and expand it into its Cartesian product of runs.

    Pairs whose source and target are the same domain are skipped.
    """
    unknown_keys = [k for k in config if k not in KNOWN_KEYS]
    if unknown_keys:
        raise unknown("grid key", unknown_keys[0], KNOWN_KEYS)
    config = apply_leave_one_out(config, registry)  # leave_one_out = "DATASET": every all-others -> one cell
    lists = {key: _as_list(config, key) for key in LIST_KEYS}
    for key in ("backbone", "strategy", "loss", "source", "target"):
        for value in lists[key]:
            if not isinstance(value, str):
                raise UserError(f"grid key `{key}` must list names (strings), got {value!r}")
    shots = _parse_shots(lists["shots"])
    seeds = _parse_seeds(lists["seeds"])
    kinds = {"backbone": "backbones", "strategy": "strategies", "loss": "adaptation_losses"}
    for key, kind in kinds.items():
        for name in lists[key]:
            registry.get(kind, name)
    train = resolve_train(config.get("train") or {})
    routed = _plugin_options(registry, config.get("set") or {}, lists)
    options = {}
    for (kind, name), given in routed.items():
        if kind == "datasets":
            continue
        entry = registry.get(kind, name)
        options[(kind, name)] = resolve_entry_options(entry, given)
        check = entry.meta.get("check_options") if kind != "backbones" else None
        if callable(check):  # value checks beyond types (backbones are checked below, defaults included)
            check(options[(kind, name)])
    lists["source"] = [canonical_source(v) for v in lists["source"]]
    data_names = [n for v in lists["source"] + lists["target"] for part in source_parts(v) if ":" in part
                  and (n := part.split(":")[0].strip())]
    data_names += [name for kind, name in routed if kind == "datasets"]
    data_opts = {n: resolve_dataset_options(registry, n, config, routed.get(("datasets", n))) for n in dict.fromkeys(data_names)}
    built_datasets: dict = {}

    def opts(kind, name):
        return options.get((kind, name)) or dict(registry.get(kind, name).defaults)

    pairs, kinds = [], {}
    for source in dict.fromkeys(lists["source"]):
        for target in dict.fromkeys(lists["target"]):
            if target in source_parts(source):
                continue
            src_space = None if is_pretrained(source) else _source_space(source, registry, data_opts, built_datasets)
            tgt = _split_domain(target, registry, "target", data_opts, built_datasets)
            tgt_space = label_space(registry, tgt, data_opts.get(tgt.dataset, {}), built_datasets, "target")
            if src_space is None:
                kinds[(source, target)] = PRETRAINED_KIND
            else:
                kinds[(source, target)] = DOMAIN_ADAPTATION if src_space[:2] == tgt_space[:2] else TASK_TRANSFER
            pairs.append((source, target))
    if not pairs:
        raise UserError("no source->target pair: every source equals its target; give different domains")
    for backbone in lists["backbone"]:
        entry = registry.get("backbones", backbone)
        for _, target in pairs:
            dataset = registry.get("datasets", parse_domain(target).dataset)
            b_mod, d_mod = entry.meta.get("modality"), dataset.meta.get("modality")
            if b_mod and d_mod and b_mod != d_mod:
                fitting = [n for n in registry.names("backbones") if registry.entries["backbones"][n].meta.get("modality") == d_mod]
                raise UserError(
                    f"backbone {backbone!r} takes {b_mod} input but {target} is {d_mod} data; "
                    f"{d_mod} backbones: {', '.join(fitting) or '(none)'}"
                )
    for loss in dict.fromkeys(lists["loss"]):  # a loss's own training recipe (lr, optimizer, schedule...)
        check_recipe(f"loss {loss!r}", opts("adaptation_losses", loss))
    for backbone in dict.fromkeys(lists["backbone"]):
        check = registry.get("backbones", backbone).meta.get("check_options")
        if callable(check):
            check(opts("backbones", backbone))
    for source, target in pairs:
        for strategy, loss, shot in itertools.product(dict.fromkeys(lists["strategy"]), dict.fromkeys(lists["loss"]), shots):
            _check_transfer_kind(registry, kinds[(source, target)], source, target, strategy, loss, shot)
    if train.target_inputs == "withheld":
        _check_withheld(registry, train, lists["strategy"], lists["loss"])
    for loss in dict.fromkeys(lists["loss"]):
        _check_source_domains(registry, loss, [source for source, _ in pairs])
    if selection_reads_source(train, registry) and any(kind != DOMAIN_ADAPTATION for kind in kinds.values()):
        raise UserError(f"model_selection = {train.model_selection} scores the target head on source data, which needs a "
                        "shared label space and source data; use last, target-oracle or a target-only validator (entropy, "
                        "im, snd) for task-transfer and pretrained pairs")
    for backbone in dict.fromkeys(lists["backbone"]):
        if any(kind == PRETRAINED_KIND for kind in kinds.values()):
            _check_pretrained_backbone(registry, backbone, opts("backbones", backbone))
    specs = []
    for backbone, (source, target), strategy, loss, shot, seed in itertools.product(
        dict.fromkeys(lists["backbone"]), pairs, dict.fromkeys(lists["strategy"]), dict.fromkeys(lists["loss"]), shots, seeds
    ):
        specs.append(
            RunSpec(
                backbone, source, target, strategy, loss, shot, seed,
                opts("backbones", backbone), opts("strategies", strategy), opts("adaptation_losses", loss), train,
                {n: data_opts[n] for n in dataset_names(source) + dataset_names(target) if data_opts[n]},
                _cell_kind(kinds[(source, target)], shot, train),
            )
        )
    from tlbench.grid.dry_run import check_grid  # --set tables used; each backbone built once (dry run)
    check_grid(config, registry, specs, built_datasets)
    return specs


def _source_space(source: str, registry: Registry, data_opts: dict, built: dict) -> tuple:
    """The label space of a source string; its domains must share one (a multi-source cell
    trains one head on their union)."""
    spaces = {}
    for part in source_parts(source):
        ref = _split_domain(part, registry, "source", data_opts, built)
        spaces[part] = label_space(registry, ref, data_opts.get(ref.dataset, {}), built, "source")
    first, *rest = spaces.items()
    for part, space in rest:
        if space[:2] != first[1][:2]:
            raise UserError(f"source {source!r} joins domains of different label spaces ({first[0]}: {len(first[1][1])} "
                            f"classes of {first[1][0]}; {part}: {len(space[1])} classes of {space[0]}); the domains of "
                            "a multi-source cell need the same classes")
    return first[1]


def _cell_kind(pair_kind: str, shots, train) -> str:
    """A pair's kind for one cell: domain adaptation with the target withheld and no target
    labels is domain generalisation."""
    if pair_kind == DOMAIN_ADAPTATION and train.target_inputs == "withheld" and shots == 0:
        return DOMAIN_GENERALISATION
    return pair_kind


def _check_withheld(registry: Registry, train, strategies: list, losses: list) -> None:
    """Refuse, in one line, what reads the target's training inputs when they are withheld."""
    why = "the target's training inputs, which train.target_inputs = withheld keeps from training"
    for loss in dict.fromkeys(losses):
        if getattr(registry.get("adaptation_losses", loss).obj, "needs_target_unlabeled", True):
            raise UserError(f"loss {loss!r} adapts to {why}; use --loss none (or a domain-generalisation method), "
                            "or train.target_inputs = unlabeled")
    for strategy in dict.fromkeys(strategies):
        if getattr(registry.get("strategies", strategy).obj, "needs_target_unlabeled", False):
            raise UserError(f"strategy {strategy!r} reads {why}; use finetune, linear-probe, lp-ft, l2sp, partial or "
                            "discriminative-lr")
    name = train.model_selection
    if name in registry.entries.get("validators", {}):
        from tlbench.plugin.validator import TARGET

        if TARGET in getattr(registry.get("validators", name).obj, "needs", ()):
            raise UserError(f"model_selection = {name} scores {why}; use last, source-val (training-domain "
                            "validation) or target-oracle (test-domain validation, an oracle)")


def _check_source_domains(registry: Registry, loss: str, sources: list[str]) -> None:
    """A domain-generalisation loss needs labeled source domains, as many as it declares."""
    cls = registry.get("adaptation_losses", loss).obj
    if not getattr(cls, "domain_generalisation", False):
        return
    need = int(getattr(cls, "min_source_domains", 1))
    for source in dict.fromkeys(sources):
        have = 0 if is_pretrained(source) else len(source_parts(source))
        if have < need:
            raise UserError(f"loss {loss!r} compares source domains and needs at least {need}; source {source!r} has "
                            f"{have}: join domains with + (--source a+b) or use --leave-one-out DATASET")


def _check_transfer_kind(registry: Registry, kind: str, source: str, target: str, strategy: str, loss: str, shots) -> None:
    """Refuse, in one line, what a task-transfer or pretrained-source cell cannot do."""
    if kind == DOMAIN_ADAPTATION:
        return
    what = "a task-transfer pair (their classes differ)" if kind == TASK_TRANSFER else "a pretrained source (no source data)"
    pair = f"{source} -> {target} is {what}"
    if shots == 0:
        raise UserError(f"{pair}: the target's new head needs target labels; use --shots 1 or more")
    strategy_cls = registry.get("strategies", strategy).obj
    loss_cls = registry.get("adaptation_losses", loss).obj
    if kind == TASK_TRANSFER and getattr(strategy_cls, "needs_shared_labels", False):
        raise UserError(f"{pair}: strategy {strategy!r} trains the target head on source labels, which needs a shared "
                        "label space; use finetune, linear-probe, lp-ft, l2sp, partial, multitask or scratch")
    if kind == TASK_TRANSFER and getattr(loss_cls, "needs_shared_labels", True):
        raise UserError(f"{pair}: loss {loss!r} needs a label space shared by source and target; use --loss none")
    if kind == PRETRAINED_KIND:
        if getattr(strategy_cls, "uses_source_labels", False):
            raise UserError(f"{pair}: strategy {strategy!r} trains on labeled source data; use finetune, linear-probe, "
                            "lp-ft, l2sp, partial or discriminative-lr")
        if getattr(loss_cls, "needs_target_unlabeled", True):
            raise UserError(f"{pair}: loss {loss!r} aligns source with target data; use --loss none")


def _check_pretrained_backbone(registry: Registry, backbone: str, options: dict) -> None:
    """A pretrained source needs a backbone whose options load pretrained weights."""
    has = registry.get("backbones", backbone).meta.get("pretrained")
    if callable(has):
        has = has(options)
    if not has:
        with_weights = [n for n in registry.names("backbones") if registry.entries["backbones"][n].meta.get("pretrained")]
        raise UserError(f"source `pretrained` needs pretrained weights, but backbone {backbone!r} with {options} has none; "
                        f"backbones that can: {', '.join(with_weights) or '(none)'} (see their weights/pretrained option)")
