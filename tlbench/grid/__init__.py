"""The grid: configuration (TOML file, flags, ``--set``) -> validated, frozen RunSpecs.

All validation happens here, before any training. The names below are the grid's public face.
"""

from tlbench.grid.config import default_grid_path, merge_config, parse_set, read_grid_file, split_list
from tlbench.grid.expansion import expand
from tlbench.grid.options import resolve_entry_options, resolve_options, resolve_train
from tlbench.grid.spec import DEFAULT_RESULTS_DIR, RunSpec

__all__ = [
    "DEFAULT_RESULTS_DIR", "RunSpec", "default_grid_path", "expand", "merge_config",
    "parse_set", "read_grid_file", "resolve_entry_options", "resolve_options", "resolve_train", "split_list",
]
