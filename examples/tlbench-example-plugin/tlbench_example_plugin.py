"""Example third-party tlbench plugin covering every plugin kind: the `tinymlp` backbone, the
`stripes` dataset, the `top-stage` strategy, the `meanmatch` loss, the `in-order` executor, the
`spread-ratio` transferability estimator and the `top2-margin` validator."""

import math

import numpy as np
import torch
from torch import nn

from tlbench import hookimpl
from tlbench.execution import Executor, worker
from tlbench.plugin.contracts import IMAGE, AdaptationLoss, Dataset, DomainData, Phase, Preprocessing, Split, Strategy
from tlbench.plugin.estimator import Estimator
from tlbench.plugin.validator import TARGET, Validator
from tlbench.training.stages import backbone_stages


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
    option_ranges = {"weight": (0.0, 1000.0)}  # checked before anything trains

    def forward(self, batch):
        gap = batch.source_features.mean(0) - batch.target_features.mean(0)
        return (gap * gap).sum()


class Stripes(Dataset):
    """12x12 images of one bright stripe, vertical or horizontal; the `noisy` domain adds noise
    and dims the stripe. Generated from ``seed``: no files, works offline."""

    domains = ("plain", "noisy")
    classes = ("vertical", "horizontal")

    def __init__(self, seed: int = 0, per_class: int = 60):
        self.seed, self.per_class = seed, per_class
        self.preprocessing = Preprocessing(IMAGE, (1, 12, 12), (0.2,), (0.4,))

    def load(self, domain):
        gen = torch.Generator().manual_seed(self.seed * 7 + self.domains.index(domain))
        n = 2 * self.per_class
        labels = torch.arange(n) % 2
        images = torch.zeros(n, 1, 12, 12)
        where = torch.randint(2, 10, (n,), generator=gen)
        for i in range(n):
            if labels[i] == 0:
                images[i, 0, :, where[i]] = 1.0
            else:
                images[i, 0, where[i], :] = 1.0
        if domain == "noisy":
            images = 0.6 * images + 0.3 * torch.rand(images.shape, generator=gen)
        x = (images - 0.2) / 0.4
        cut = int(0.75 * n)
        return DomainData(Split(x[:cut], labels[:cut]), Split(x[cut:], labels[cut:]))


class TopStage(Strategy):
    """Start from the source model; train only its last backbone stage and the head."""

    defaults = {"top_lr_scale": 0.5}
    option_ranges = {"top_lr_scale": (0.0, 10.0)}

    def phases(self, model, ctx):
        top = list(backbone_stages(model.backbone)[-1])
        groups = [{"params": top, "lr": ctx.lr * self.hparams["top_lr_scale"]},
                  {"params": list(model.head.parameters()), "lr": ctx.lr}]
        return [Phase("top-stage", groups, ctx.steps)]


class InOrder(Executor):
    """Runs every task in this process, in the order given (what `local` does, spelled out)."""

    options = ()

    def __init__(self, settings, config, registry=None, log=print):
        super().__init__(settings, config, registry, log)
        worker.install(config, registry, log)

    def run_tasks(self, tasks):
        for task in tasks:
            yield task, worker.execute(task, self.config)


class SpreadRatio(Estimator):
    """How far apart the class means of the target features lie compared with the spread of
    the features around their own class mean (traces of the two scatter matrices)."""

    defaults = {"eps": 1e-9}
    option_ranges = {"eps": (0.0, 1.0)}

    def score(self, features, labels, source_probs=None):
        overall = features.mean(0)
        between = within = 0.0
        for label in np.unique(labels):
            members = features[labels == label]
            centre = members.mean(0)
            between += len(members) * float(((centre - overall) ** 2).sum())
            within += float(((members - centre) ** 2).sum())
        return between / (within + self.hparams["eps"])


class Top2Margin(Validator):
    """Mean gap between the two most probable classes on the unlabeled target inputs: a wide
    gap reads as a confident model (higher is better)."""

    needs = (TARGET,)

    def score(self, inputs):
        top2 = inputs.target_logits.float().softmax(1).topk(2, dim=1).values
        return float((top2[:, 0] - top2[:, 1]).mean())


@hookimpl
def register_estimators(register):
    register("spread-ratio", SpreadRatio)


@hookimpl
def register_validators(register):
    register("top2-margin", Top2Margin)


@hookimpl
def register_datasets(register):
    register("stripes", Stripes, domains=Stripes.domains, modality=IMAGE, num_classes=2, classes=Stripes.classes,
             defaults={"seed": 0, "per_class": 60},
             option_ranges={"seed": (0, 2**31 - 1), "per_class": (1, 10_000)}, description="synthetic stripes, plain and noisy")


@hookimpl
def register_strategies(register):
    register("top-stage", TopStage)


@hookimpl
def register_executors(register):
    register("in-order", InOrder, description="sequential, in this process")


@hookimpl
def register_backbones(register):
    register("tinymlp", TinyMLP, modality="image", defaults={"hidden": 64},
             option_ranges={"hidden": (1, 65536)}, description="one-hidden-layer MLP")


@hookimpl
def register_adaptation_losses(register):
    register("meanmatch", MeanMatch)
