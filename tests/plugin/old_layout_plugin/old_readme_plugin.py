"""A plugin written from the README of the first release, before the core moved into sub-packages:
it imports only the flat names that README documented (never edit it to the new paths)."""

import torch
from torch import nn

from tlbench import hookimpl
from tlbench.contracts import AdaptationLoss, Phase, Strategy
from tlbench.errors import UserError
from tlbench.execution import Executor
from tlbench.stages import backbone_stages
from tlbench import worker


class OldMeanMatch(AdaptationLoss):
    defaults = {"weight": 1.0}

    def forward(self, batch):
        gap = batch.source_features.mean(0) - batch.target_features.mean(0)
        return (gap * gap).sum()


class OldTopStage(Strategy):
    """Trains the last backbone stage and the head."""

    def phases(self, model, ctx):
        top = list(backbone_stages(model.backbone)[-1])
        return [Phase("top", [{"params": top + list(model.head.parameters()), "lr": ctx.lr}], ctx.steps)]


class OldLocal(Executor):
    def __init__(self, settings, config, registry=None, log=print):
        super().__init__(settings, config, registry, log)
        worker.install(config, registry, log)

    def run_tasks(self, tasks):
        for task in tasks:
            yield task, worker.execute(task, self.config)


@hookimpl
def register_adaptation_losses(register):
    register("old-meanmatch", OldMeanMatch)


@hookimpl
def register_strategies(register):
    register("old-top-stage", OldTopStage)


@hookimpl
def register_executors(register):
    register("old-local", OldLocal)


assert issubclass(UserError, Exception) and isinstance(torch.zeros(1), torch.Tensor) and nn.Module
