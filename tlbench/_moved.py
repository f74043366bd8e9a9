"""Old module paths from before the core was split into sub-packages keep importing.

``import tlbench.contracts`` (and every other flat name the core had) returns the module at its
new home, the very same module object, so plugins written against the old layout keep working.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

MOVED = {
    "hookspecs": "plugin.hookspecs", "plugins": "plugin.discovery", "registry": "plugin.registry",
    "contracts": "plugin.contracts", "errors": "plugin.errors", "dataset_options": "grid.dataset_options",
    "train": "training.loop", "selection": "training.selection", "stages": "training.stages",
    "augment": "plugin.augment", "speed": "training.speed", "data": "training.data", "model": "training.model",
    "executor": "execution.grid_runner", "runner": "execution.runner", "worker": "execution.worker",
    "claims": "execution.claims", "cache": "execution.source_cache", "results": "execution.results",
    "reexport": "execution.reexport", "onnx_export": "deploy.onnx_export", "ort": "deploy.ort",
    "quantize": "deploy.quantize", "predict": "deploy.predict", "leaderboard": "report.leaderboard",
    "html_report": "report.html", "stats": "report.stats", "plots": "report.plots", "tracking": "report.tracking",
    "exports": "report.exports", "cli_deploy": "cli.deploy", "timing": "utils.timing",
    "environment": "utils.environment",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves ``tlbench.<old>`` to ``tlbench.<new>`` (same module object)."""

    def find_spec(self, fullname, path=None, target=None):
        package, _, leaf = fullname.rpartition(".")
        if package != "tlbench" or leaf not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        module = importlib.import_module(f"tlbench.{MOVED[spec.name.rpartition('.')[2]]}")
        spec.loader_state = module.__spec__  # the import system overwrites it; exec_module restores it
        return module

    def exec_module(self, module):
        module.__spec__ = module.__spec__.loader_state


def install() -> None:
    """Put the alias finder on ``sys.meta_path`` once."""
    if not any(isinstance(f, _Alias) for f in sys.meta_path):
        sys.meta_path.append(_Alias())
