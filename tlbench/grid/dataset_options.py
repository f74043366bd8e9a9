"""Dataset options (``[set.<dataset>]``, ``--data-root``, ``--download``) and load-time domains.

Datasets get options like any plugin; the grid-wide ``data_root`` and ``download`` keys are
passed to every dataset whose defaults declare them. A dataset registered with
``domains=None`` lists its domains only once built with its options (e.g. folders on disk), so
validation builds it, as it does every dataset with a ``data_root`` option: their constructors
should be cheap (no loading) and raise ``UserError`` for a missing path.
"""

from __future__ import annotations

import json

from tlbench.grid.domains import resolve_subset
from tlbench.grid.options import entry_option_specs, resolve_options
from tlbench.settings import check_value
from tlbench.plugin.contracts import Dataset
from tlbench.plugin.errors import UserError, first_line, unknown

GLOBAL_DATASET_KEYS = ("data_root", "download")


def resolve_dataset_options(registry, name: str, config: dict, given: dict | None) -> dict:
    """Defaults, then the grid-wide keys it declares, then its ``[set.<name>]`` table."""

    entry = registry.get("datasets", name)
    defaults = entry.defaults
    specs = entry_option_specs(entry)
    base = dict(defaults)
    for key in GLOBAL_DATASET_KEYS:
        if key in defaults and config.get(key) is not None:
            base[key] = check_value(f"dataset {name!r}", specs[key], config[key])
    return resolve_options(f"dataset {name!r}", base, given or {}, specs)


def build_dataset(entry, options: dict):
    """Instantiate a dataset entry with its options."""
    return entry.obj(**options)


def dataset_key(name: str, options: dict) -> str:
    """A stable cache key of a dataset and its options."""
    return name + json.dumps(options, sort_keys=True, default=str)


def domains_of(registry, name: str, options: dict, built: dict) -> tuple[str, ...] | None:
    """The dataset's domains: from its register meta, or (``domains=None``) from building it."""
    entry = registry.get("datasets", name)
    domains = entry.meta.get("domains")
    reads_disk = "data_root" in entry.defaults  # built now so a wrong path fails before training
    if domains and not reads_disk:
        return tuple(domains)
    if not reads_disk and ("domains" not in entry.meta or domains is not None):
        return None
    found = tuple(getattr(built_dataset(registry, name, options, built), "domains", ()) or domains or ())
    if not found:
        raise UserError(f"dataset {name!r} found no domains with options {options}")
    return found


def check_domain(registry, name: str, domain: str, options: dict, built: dict) -> None:
    """UserError unless ``domain`` is one of the dataset's domains."""
    domains = domains_of(registry, name, options, built)
    if domains and domain not in domains:
        raise unknown("domain", domain, domains, f" of dataset {name!r}")
    if "data_root" in registry.get("datasets", name).defaults:  # its files are checked before training
        check = getattr(built_dataset(registry, name, options, built), "check_domain", None)
        if callable(check):
            try:
                check(domain)
            except UserError:
                raise
            except Exception as exc:  # noqa: BLE001 - a plugin's check may raise anything
                raise UserError(f"dataset {name!r} cannot check domain {domain!r}: {first_line(exc)}") from None


def built_dataset(registry, name: str, options: dict, built: dict):
    """Dataset ``name`` built with ``options`` once per ``built`` cache (keyed by ``dataset_key``);
    a constructor that raises anything but a UserError becomes a one-line UserError."""
    key = dataset_key(name, options)
    if key not in built:
        try:
            built[key] = build_dataset(registry.get("datasets", name), options)
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 - a plugin's constructor may raise anything
            raise UserError(f"dataset {name!r} with options {options} cannot be built: {first_line(exc)}") from None
    return built[key]


def label_space(registry, ref, options: dict, built: dict, role: str = "domain") -> tuple[str, tuple[str, ...], tuple[int, ...] | None]:
    """(label-space id, effective class names, indices into the dataset's ``classes`` or None
    for all of them in order) of a DomainRef: its class subset, or the classes its domain has."""
    entry = registry.get("datasets", ref.dataset)
    meta = entry.meta
    classes = tuple(str(c) for c in meta["classes"]) if meta.get("classes") else None
    per_domain = None
    overrides = isinstance(entry.obj, type) and entry.obj.domain_classes is not Dataset.domain_classes
    if classes is None or overrides:
        dataset = built_dataset(registry, ref.dataset, options, built)
        classes = tuple(str(c) for c in dataset.classes) or classes
        per_domain = dataset.domain_classes(ref.domain) if overrides else None
    if classes is None:
        classes = tuple(str(i) for i in range(int(meta.get("num_classes") or 0)))
    domain_classes = tuple(per_domain) if per_domain is not None else classes
    picked = resolve_subset(ref, domain_classes, role)
    names = domain_classes if picked is None else tuple(domain_classes[i] for i in picked)
    indices = None if names == classes else tuple(classes.index(n) for n in names)
    space = meta.get("label_space") or ref.dataset
    return space, names, indices
