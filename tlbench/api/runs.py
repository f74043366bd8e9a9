"""``run_grid``: a grid from a dict or a TOML file, run as ``tlbench run`` runs it."""

from __future__ import annotations

import io
from pathlib import Path

from tlbench.api.results import Results, load_results
from tlbench.plugin.errors import UserError


def run_grid(grid, *, results_dir=None, device: str = "auto", plugins_dirs=(), quiet: bool = True) -> Results:
    """Run a grid (a dict with the grid-file keys, or the path of a TOML grid file); finished cells
    are skipped as by ``tlbench run``. Returns the :class:`Results` of the grid's cells."""
    from rich.console import Console

    from tlbench.execution.contract import resolve_settings
    from tlbench.execution.grid_runner import run_grid as run_cells
    from tlbench.grid import DEFAULT_RESULTS_DIR, expand, read_grid_file
    from tlbench.plugin.discovery import load_plugins
    from tlbench.search.driver import run_search
    from tlbench.search.trials import expand_search
    from tlbench.utils.environment import resolve_device

    if isinstance(grid, (str, Path)):
        config = read_grid_file(grid)
    elif isinstance(grid, dict):
        config = dict(grid)
    else:
        raise UserError(f"run_grid needs a dict of grid keys or a grid file path, not {type(grid).__name__}")
    if results_dir is not None:
        config["results_dir"] = str(results_dir)
    directory = str(config.get("results_dir") or DEFAULT_RESULTS_DIR)
    registry = load_plugins([str(d) for d in plugins_dirs])[1]
    specs = expand(config, registry)
    settings = resolve_settings(config, registry)
    target = resolve_device(config.get("device", device))
    console = Console(file=io.StringIO()) if quiet else Console()

    def run(todo, render):
        return run_cells(todo, registry, directory, target, console, settings, [str(d) for d in plugins_dirs])

    run_search(config, registry, specs, run, None, log=console.print)
    cells = expand_search(config, registry, specs)  # a search's trials (replayed from the results), else specs
    ids = {run_id for spec in cells for run_id in spec.accepted_ids}
    return Results([r for r in load_results(directory).runs if r.get("run_id") in ids], Path(directory))
