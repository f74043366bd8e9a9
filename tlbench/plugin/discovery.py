"""Plugin discovery: the ``tlbench`` entry-point group, loose files, and TLBENCH_LOAD_PLUGINS.

First-party plugins are found through the same entry points as third-party ones. Each plugin
is imported and asked to register on its own, so one broken plugin is reported and the rest
still work.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import sys
from pathlib import Path

import pluggy

from tlbench.plugin import hookspecs
from tlbench.plugin.errors import UserError, closest_first
from tlbench.plugin.registry import KINDS, Provenance, Registry

ENTRY_POINT_GROUP = "tlbench"
ENV_ALLOWLIST = "TLBENCH_LOAD_PLUGINS"


def _allowlist() -> set[str] | None:
    value = os.environ.get(ENV_ALLOWLIST)
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


def candidate_names(plugins_dirs=()) -> list[str]:
    """The names of every plugin that could be loaded (entry points, then loose files), unloaded."""
    names = [ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)]
    for directory in plugins_dirs or ():
        names += [path.stem for path in Path(directory).glob("*.py")]
    return sorted(set(names))


def check_allowlist(plugins_dirs=()) -> None:
    """A one-line UserError when TLBENCH_LOAD_PLUGINS names a plugin that does not exist (a typo
    would otherwise load nothing, silently)."""
    allowed = _allowlist()
    if allowed is None:
        return
    known = candidate_names(plugins_dirs)
    missing = sorted(allowed - set(known))
    if not allowed:
        raise UserError(f"{ENV_ALLOWLIST} is set but names no plugin; unset it to load every plugin, or list some: "
                        f"{', '.join(known)}")
    if missing:
        listing = ", ".join(closest_first(missing[0], known)) or "(none installed)"
        raise UserError(f"{ENV_ALLOWLIST} names {', '.join(map(repr, missing))}, which no installed plugin is called; "
                        f"plugins: {listing} (unset {ENV_ALLOWLIST} to load them all)")


def _load_file(path: Path):
    module_name = f"tlbench_local_plugin_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def _candidates(plugins_dirs):
    """Yield (name, loader, provenance) for every plugin that may be loaded."""
    for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = getattr(ep, "dist", None)
        provenance = Provenance(ep.name, dist.name if dist else None, dist.version if dist else None)
        yield ep.name, ep.load, provenance
    for directory in plugins_dirs or ():
        for path in sorted(Path(directory).glob("*.py")):
            yield path.stem, (lambda p=path: _load_file(p)), Provenance(path.stem, None, f"file {path}")


def load_plugins(plugins_dirs=()) -> tuple[pluggy.PluginManager, Registry]:
    """Load every allowed plugin and return the plugin manager and the filled registry."""
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    registry = Registry()
    allowed = _allowlist()
    provenances = {}
    for name, load, provenance in _candidates(plugins_dirs):
        if allowed is not None and name not in allowed:
            continue
        if pm.has_plugin(name):
            registry.broken.append({"plugin": name, "error": f"plugin name {name!r} is used twice"})
            continue
        try:
            module = load()
            pm.register(module, name=name)
        except Exception as exc:  # a broken plugin must not take the others down
            registry.broken.append(_broken(provenance, exc))
            continue
        provenances[name] = provenance
    for kind in KINDS:
        caller = getattr(pm.hook, f"register_{kind}")
        for impl in caller.get_hookimpls():
            provenance = provenances[impl.plugin_name]
            try:
                impl.function(register=registry.register_callback(kind, provenance))
            except Exception as exc:
                registry.broken.append(_broken(provenance, exc))
    return pm, registry


def _broken(provenance: Provenance, exc: Exception) -> dict:
    return {
        "plugin": provenance.plugin,
        "distribution": provenance.distribution,
        "version": provenance.version,
        "error": f"{type(exc).__name__}: {exc}",
    }
