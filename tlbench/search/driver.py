"""Running a search: one grid run for the random sampler, rounds for TPE.

TPE's next configurations depend on finished trials, so a TPE search runs the trials known now,
re-expands the grid (which replays the recorded results; tlbench.search.sampling) and runs the
new ones, until every group has its trials or no new trial can be sampled (cells left to
another process, or interrupted). Each round is an ordinary grid run: executors, claims and
resume work as for any grid.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

from tlbench.plugin.errors import UserError
from tlbench.search.trials import expand_search, search_settings, total_trials


def run_search(config: dict, registry, specs, run: Callable, render=None, log=print, select: str | None = None) -> int:
    """Run the grid ``specs`` (expanded without the search) through ``run(specs, render) -> exit
    code``; with a ``[search]`` table, run its trials instead (see the module docstring).
    ``select``: the validator whose picks the leaderboard's main table shows."""
    search = search_settings(config, registry)
    if select is not None:
        if search is None:
            raise UserError(f"--select {select} picks among search trials; add --search N (or a [search] table)")
        registry.get("validators", select)
        render = partial(render, select=select) if render is not None else None
    if search is None:
        return run(specs, render)
    trials = expand_search(config, registry, specs, log)
    expected = total_trials(config, registry, specs)
    settings = search.settings
    log(f"search: {settings.trials} trials per group ({settings.sampler} sampler, seed {settings.seed}), "
        f"{expected} trial cells over {len(specs)} grid cells")
    failed = False
    while True:
        last = len(trials) >= expected
        code = run(trials, render if last else None)
        if code == 130:
            return code
        failed |= code != 0
        if last:
            return 1 if failed else 0
        more = expand_search(config, registry, specs)
        if len(more) <= len(trials):  # nothing new can be sampled now
            log(f"search: {len(trials)} of {expected} trial cells could be sampled; rerun the same command to continue")
            if render is not None:
                run(trials, render)  # every cell is finished or held elsewhere: this only shows the table
            return 1 if failed else 0
        trials = more
