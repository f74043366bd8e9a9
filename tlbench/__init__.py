"""tlbench: a transfer-learning benchmark harness built on pluggy plugins."""

from tlbench import _moved
from tlbench.plugin.hookspecs import hookimpl
from tlbench.plugin.errors import UserError
from tlbench.api import Results, load_results, run_grid

__version__ = "0.1.0"
__all__ = ["Results", "UserError", "hookimpl", "load_results", "run_grid", "__version__"]
_moved.install()
