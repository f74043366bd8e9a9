"""``leave_one_out = "DATASET"`` (``--leave-one-out DATASET``): DomainBed's sweep as grid cells.

Every domain of the dataset becomes a target once, trained on all the other domains joined as
one source (``a+b+c -> d``). The grid's ``source`` and ``target`` lists are filled in, so the
cells are ordinary multi-source cells (the pairs a target already belongs to are skipped as
usual), and ``train.target_inputs`` defaults to ``withheld``: with ``--shots 0`` every cell is
domain generalisation, with target shots it is few-shot adaptation from several sources.
"""

from __future__ import annotations

from tlbench.grid.dataset_options import built_dataset, resolve_dataset_options
from tlbench.grid.domains import SOURCE_JOIN
from tlbench.plugin.errors import UserError, unknown

KEY = "leave_one_out"


def dataset_domains(registry, name: str, config: dict) -> tuple[str, ...]:
    """The domains dataset ``name`` declares (built with the grid's options when it lists none
    up front, as a folder of images does)."""
    if name not in registry.entries.get("datasets", {}):
        raise unknown("dataset in `leave_one_out`", name, registry.names("datasets"))
    entry = registry.get("datasets", name)
    domains = tuple(entry.meta.get("domains") or ())
    if not domains:
        options = resolve_dataset_options(registry, name, config, (config.get("set") or {}).get(name))
        domains = tuple(getattr(built_dataset(registry, name, options, {}), "domains", ()) or ())
    return tuple(str(d) for d in domains)


def apply_leave_one_out(config: dict, registry) -> dict:
    """``config`` with ``leave_one_out`` expanded into its ``source`` and ``target`` lists (the
    same config when the key is absent); a conflicting or unusable value is a one-line UserError."""
    name = config.get(KEY)
    if name is None:
        return config
    if not isinstance(name, str) or not name.strip():
        raise UserError(f"`{KEY}` must name one dataset, e.g. --leave-one-out rotatedmnist")
    name = name.strip()
    given = [key for key in ("source", "target") if config.get(key) is not None]
    if given:
        raise UserError(f"`{KEY}` = {name!r} makes the sources and targets itself; drop `{given[0]}` "
                        f"(--{given[0]}) or drop --leave-one-out")
    domains = dataset_domains(registry, name, config)
    if len(domains) < 2:
        raise UserError(f"`{KEY}` = {name!r}: the dataset has {len(domains)} domain; leaving one out needs at least 2")
    out = {key: value for key, value in config.items() if key != KEY}
    out["target"] = [f"{name}:{d}" for d in domains]
    out["source"] = [SOURCE_JOIN.join(f"{name}:{o}" for o in domains if o != d) for d in domains]
    train = dict(config.get("train") or {})
    train.setdefault("target_inputs", "withheld")
    out["train"] = train
    return out
