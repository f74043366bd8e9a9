"""Typed registries that plugins fill through the ``register`` callback of each hook."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

from tlbench.plugin.errors import PluginError, unknown

KINDS = ("backbones", "datasets", "strategies", "adaptation_losses", "executors", "validators", "estimators")
SINGULAR = {
    "backbones": "backbone",
    "datasets": "dataset",
    "strategies": "strategy",
    "adaptation_losses": "adaptation loss",
    "executors": "executor",
    "validators": "validator",
    "estimators": "estimator",
}


@dataclass(frozen=True)
class Provenance:
    """Which plugin module, distribution and version provided an entry."""

    plugin: str
    distribution: str | None = None
    version: str | None = None

    def label(self) -> str:
        if self.distribution:
            return f"{self.plugin} ({self.distribution} {self.version})"
        return self.plugin


@dataclass(frozen=True)
class Entry:
    """One registered backbone, dataset, strategy or adaptation loss."""

    kind: str
    name: str
    obj: Any
    meta: dict
    provenance: Provenance

    @property
    def defaults(self) -> dict:
        """Option defaults: the ``defaults`` meta, or the class attribute of a strategy/loss."""
        if "defaults" in self.meta:
            return dict(self.meta["defaults"])
        return dict(getattr(self.obj, "defaults", {}) or {})

    @property
    def option_ranges(self) -> dict:
        """Declared numeric bounds ``{option: (low, high)}`` (``None`` = unbounded on that side):
        the ``option_ranges`` meta, or the class attribute."""
        return dict(self.meta.get("option_ranges", getattr(self.obj, "option_ranges", {})) or {})

    @property
    def option_choices(self) -> dict:
        """Declared allowed values ``{option: (choice, ...)}``: the ``option_choices`` meta, or the class attribute."""
        return dict(self.meta.get("option_choices", getattr(self.obj, "option_choices", {})) or {})

    @property
    def label(self) -> str:
        """How messages name this entry, e.g. ``adaptation loss 'dann'``."""
        return f"{SINGULAR[self.kind]} {self.name!r}"

    def as_dict(self) -> dict:
        out = {
            "name": self.name,
            "plugin": self.provenance.plugin,
            "distribution": self.provenance.distribution,
            "version": self.provenance.version,
        }
        for key in ("modality", "domains", "num_classes", "description"):
            if key in self.meta:
                value = self.meta[key]
                out[key] = list(value) if isinstance(value, tuple) else value
        return out


@dataclass
class Registry:
    """All registered entries by kind, plus plugins that failed to load."""

    entries: dict[str, dict[str, Entry]] = field(default_factory=lambda: {k: {} for k in KINDS})
    broken: list[dict] = field(default_factory=list)

    def add(self, kind: str, name: str, obj: Any, meta: dict, provenance: Provenance) -> None:
        """Validate and add one entry; a duplicate name names both plugins."""
        if not isinstance(name, str) or not name or any(c in name for c in " ,:="):
            raise PluginError(f"{provenance.label()}: invalid {SINGULAR[kind]} name {name!r}")
        if kind in ("strategies", "adaptation_losses", "executors", "validators", "estimators") and not inspect.isclass(obj):
            raise PluginError(f"{provenance.label()}: {SINGULAR[kind]} {name!r} must be a class, not {obj!r}")
        if not callable(obj):
            raise PluginError(f"{provenance.label()}: {SINGULAR[kind]} {name!r} must be a factory or class")
        existing = self.entries[kind].get(name)
        if existing is not None:
            raise PluginError(
                f"duplicate {SINGULAR[kind]} {name!r}: registered by {existing.provenance.label()} "
                f"and by {provenance.label()}"
            )
        self.entries[kind][name] = Entry(kind, name, obj, dict(meta), provenance)

    def register_callback(self, kind: str, provenance: Provenance) -> Callable:
        """The ``register`` function handed to one plugin's hook for one kind."""

        def register(name: str, obj: Any, **meta: Any) -> None:
            self.add(kind, name, obj, meta, provenance)

        register.__doc__ = f"Register a {SINGULAR[kind]}: register(name, factory_or_class, **meta)."
        return register

    def get(self, kind: str, name: str) -> Entry:
        """The entry called ``name``, or a UserError listing the known ones, closest first."""
        try:
            return self.entries[kind][name]
        except KeyError:
            raise unknown(SINGULAR[kind], name, self.entries[kind]) from None

    def names(self, kind: str) -> list[str]:
        return sorted(self.entries[kind])

    def as_dict(self) -> dict:
        out = {kind: [e.as_dict() for _, e in sorted(self.entries[kind].items())] for kind in KINDS}
        out["broken"] = list(self.broken)
        return out
