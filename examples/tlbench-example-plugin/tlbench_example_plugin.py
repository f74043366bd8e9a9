"""Example third-party tlbench plugin: the `tinymlp` backbone and the `meanmatch` loss."""

import math

from torch import nn

from tlbench import hookimpl
from tlbench.plugin.contracts import AdaptationLoss


class TinyMLP(nn.Module):
    """Flatten the image and apply one hidden layer: ``hidden`` features."""

    def __init__(self, input_shape, hidden: int = 64):
        super().__init__()
        self.out_features = hidden
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), hidden), nn.ReLU())

    def forward(self, x):
        return self.net(x)


class MeanMatch(AdaptationLoss):
    """Squared distance between the mean source and mean target feature vectors."""

    defaults = {"weight": 1.0}

    def forward(self, batch):
        gap = batch.source_features.mean(0) - batch.target_features.mean(0)
        return (gap * gap).sum()


@hookimpl
def register_backbones(register):
    register("tinymlp", TinyMLP, modality="image", defaults={"hidden": 64}, description="one-hidden-layer MLP")


@hookimpl
def register_adaptation_losses(register):
    register("meanmatch", MeanMatch)
