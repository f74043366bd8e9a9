"""The flat module paths the first release's README gave plugin authors keep importing.

``import tlbench.contracts`` (and the few other documented flat names) returns the module at its
new home, the very same module object, and warns once (``FutureWarning``) with the path to use.
Only documented names are kept: the README of the first release named ``tlbench.contracts``,
``tlbench.stages`` and ``tlbench.worker``; ``tlbench.errors`` was named by the README after the
split and is used by plugins written then.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

MOVED = {
    "contracts": "plugin.contracts",
    "errors": "plugin.errors",
    "stages": "training.stages",
    "worker": "execution.worker",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves ``tlbench.<old>`` to ``tlbench.<new>`` (same module object)."""

    def find_spec(self, fullname, path=None, target=None):
        package, _, leaf = fullname.rpartition(".")
        if package != "tlbench" or leaf not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        new = f"tlbench.{MOVED[spec.name.rpartition('.')[2]]}"
        warnings.warn(f"{spec.name} is deprecated and will be removed; import {new} instead", FutureWarning, stacklevel=2)
        module = importlib.import_module(new)
        spec.loader_state = module.__spec__  # the import system overwrites it; exec_module restores it
        return module

    def exec_module(self, module):
        module.__spec__ = module.__spec__.loader_state


def install() -> None:
    """Put the alias finder on ``sys.meta_path`` once."""
    if not any(isinstance(f, _Alias) for f in sys.meta_path):
        sys.meta_path.append(_Alias())
