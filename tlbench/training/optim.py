"""Optimizers and learning-rate schedules: the ``[train]`` recipe every training run follows.

A *recipe* is the subset of training settings that says how parameters move: the optimizer,
its base learning rate, momentum / weight decay, and the schedule that scales every parameter
group's declared rate by one common factor (so a backbone at 0.1x the head's rate stays at
0.1x all the way down). Source pretraining follows ``[train]``; a transfer follows ``[train]``
overridden by the recipe keys its adaptation loss declares in its ``defaults`` (see
:func:`transfer_recipe`).
"""

from __future__ import annotations

import math

import torch

from tlbench.settings.train import OPTIMIZERS, RECIPE_DEFAULTS, SCHEDULES, TrainSettings  # noqa: F401 - RECIPE_DEFAULTS: documented here


def recipe_of(settings) -> dict:
    """The recipe keys of ``settings`` (a TrainSettings, or a dict with missing keys at their defaults)."""
    if isinstance(settings, TrainSettings):
        return settings.recipe()
    return {k: settings.get(k, v) for k, v in RECIPE_DEFAULTS.items()}


def transfer_recipe(train, loss_options: dict) -> dict:
    """What a transfer trains with: ``[train]``'s recipe, overridden by the recipe keys an
    adaptation loss declares among its options (e.g. DANN's SGD + inverse annealing)."""
    return {**recipe_of(train), **{k: v for k, v in loss_options.items() if k in RECIPE_DEFAULTS}}


def lr_factor(step: int, total: int, recipe: dict) -> float:
    """The multiplier on every group's declared rate at ``step`` of ``total`` (0-based).

    Progress is p = step / total. ``constant`` 1; ``cosine`` 0.5 (1 + cos(pi p)), 0 at the end;
    ``step`` step_factor ** floor(p / step_every); ``inverse`` (1 + gamma p) ** -power. With a
    ``warmup`` fraction w, the first w * total steps also ramp linearly from 1/(w total) to 1.
    """
    total = max(1, int(total))
    p = min(max(step / total, 0.0), 1.0)
    schedule = recipe.get("schedule", "constant")
    if schedule == "constant":
        factor = 1.0
    elif schedule == "cosine":
        factor = 0.5 * (1.0 + math.cos(math.pi * p))
    elif schedule == "step":
        factor = float(recipe["step_factor"]) ** math.floor(p / float(recipe["step_every"]) + 1e-9)
    elif schedule == "inverse":
        factor = (1.0 + float(recipe["schedule_gamma"]) * p) ** -float(recipe["schedule_power"])
    else:
        raise ValueError(f"unknown schedule {schedule!r}; use one of {', '.join(SCHEDULES)}")
    warm = float(recipe.get("warmup", 0.0)) * total
    if warm > 0 and step < warm:
        factor *= (step + 1) / math.ceil(warm)
    return factor


def make_optimizer(groups: list[dict], recipe: dict) -> torch.optim.Optimizer:
    """The recipe's optimizer over ``groups``, each group at its own declared ``lr``."""
    name, decay = recipe.get("optimizer", "adam"), float(recipe.get("weight_decay", 0.0))
    if name == "sgd":
        return torch.optim.SGD(groups, lr=groups[0]["lr"], momentum=float(recipe["momentum"]),
                               nesterov=bool(recipe["nesterov"]) and float(recipe["momentum"]) > 0, weight_decay=decay)
    if name == "adamw":
        return torch.optim.AdamW(groups, weight_decay=decay)
    if name == "adam":
        return torch.optim.Adam(groups, weight_decay=decay)
    raise ValueError(f"unknown optimizer {name!r}; use one of {', '.join(OPTIMIZERS)}")


def make_scheduler(optimizer: torch.optim.Optimizer, recipe: dict, start: int, total: int):
    """A torch LambdaLR applying :func:`lr_factor` from global step ``start`` on (a phase that
    begins mid-run continues the schedule rather than restarting it)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(start + s, total, recipe))
