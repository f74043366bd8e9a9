"""tlbench: a transfer-learning benchmark harness built on pluggy plugins."""

from tlbench import _moved
from tlbench.plugin.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["hookimpl", "__version__"]
_moved.install()
