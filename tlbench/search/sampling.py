"""Optuna sampling of trial configurations, deterministic and resumable.

A group's trials come from one Optuna study seeded from (search seed, group). Trial 0 is the
plugins' defaults when ``defaults_first`` (DomainBed's hparams seed 0); the others are asked
from the sampler in index order.

- ``random``: no trial depends on another's result, so every configuration is known at once.
- ``tpe``: trial i depends on the objective values of trials 0..i-1 once the first ``startup``
  trials (random) are done. Nothing is kept in memory between runs: each time the grid is
  expanded the study is rebuilt by replaying the recorded results (result.json files) in index
  order, and sampling stops at the first trial that still needs an unknown result. Replaying the
  same records gives the same configurations, so a search killed at any point and started again
  finishes with the same trial set.
"""

from __future__ import annotations

from typing import Callable

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import TrialState

from tlbench.settings.search import SAMPLERS

PENDING = object()  # a trial whose runs have not all finished yet


def make_sampler(name: str, seed: int, startup: int) -> optuna.samplers.BaseSampler:
    """The Optuna sampler called ``name`` with a fixed seed."""
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)
    raise ValueError(f"unknown sampler {name!r}; use one of {', '.join(SAMPLERS)}")


def sample_configs(distributions: dict[str, BaseDistribution], trials: int, sampler: str, seed: int, startup: int = 4,
                   first: dict | None = None, value_of: Callable[[int, dict], object] | None = None,
                   maximize: bool = True) -> list[dict]:
    """The configurations of trials 0, 1, ... that can be known now (all ``trials`` of them for
    the random sampler). ``first``: trial 0's fixed values (the defaults), or None to sample it.
    ``value_of(index, params)`` gives a finished trial's objective value, None when it failed or
    has no score, or :data:`PENDING`; only the TPE sampler asks."""
    if not distributions:
        return [dict(first or {})][:trials]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=make_sampler(sampler, seed, startup), direction="maximize" if maximize else "minimize")
    configs, waiting = [], False
    for index in range(trials):
        if index == 0 and first is not None:
            trial, params = None, dict(first)  # the defaults: kept as they are, even outside the space
        else:
            trial = study.ask(distributions)
            params = dict(trial.params)
        configs.append(params)
        if sampler == "random":
            continue
        value = value_of(index, params) if value_of is not None else PENDING
        if value is PENDING:
            waiting = True
        elif trial is None:
            _record_defaults(study, params, distributions, value)
        elif value is None:
            study.tell(trial, state=TrialState.FAIL)
        else:
            study.tell(trial, float(value))
        if waiting and index + 1 >= startup:  # the next configuration depends on results not in yet
            break
    return configs


def _record_defaults(study, params: dict, distributions: dict, value) -> None:
    """Tell TPE how the defaults did, when they lie inside the space (it cannot model them otherwise)."""
    try:
        state = TrialState.FAIL if value is None else TrialState.COMPLETE
        study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions, state=state,
                                                  value=None if value is None else float(value)))
    except ValueError:
        pass
