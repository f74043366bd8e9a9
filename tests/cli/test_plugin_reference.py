"""A plugin written only from docs/plugin-reference.md (a dataset, a backbone, a strategy, a loss
and an executor) loads, passes the dry run, runs a tiny grid and shows up in the leaderboard."""

import json

from conftest import FAST_TRAIN, read_results, run_cli

PLUGIN = '''
import torch
from torch import nn

from tlbench import hookimpl
from tlbench.execution import Executor, worker
from tlbench.plugin.contracts import (IMAGE, AdaptationLoss, Dataset, DomainData, Phase, Preprocessing, Split,
                                      Strategy)
from tlbench.plugin.errors import UserError
from tlbench.training.stages import backbone_stages


class Bars(Dataset):
    """Vertical, horizontal or diagonal bars; domain `b` is brighter and noisier."""

    domains = ("a", "b")
    classes = ("vertical", "horizontal", "diagonal")

    def __init__(self, seed: int = 0, size: int = 8):
        if size < 6:
            raise UserError(f"refdata size {size} is too small; use 6 or more")
        self.seed, self.size = seed, size
        self.preprocessing = Preprocessing(IMAGE, (1, size, size), (0.5,), (0.5,))

    def load(self, domain):
        g = torch.Generator().manual_seed(self.seed * 10 + (domain == "b"))
        n, s = 90, self.size
        y = torch.arange(n) % 3
        x = torch.rand(n, 1, s, s, generator=g) * (0.6 if domain == "b" else 0.3)
        for i in range(n):
            if y[i] == 0:
                x[i, 0, :, s // 2] += 1.0
            elif y[i] == 1:
                x[i, 0, s // 2, :] += 1.0
            else:
                x[i, 0].diagonal().add_(1.0)
        x = (x - 0.5) / 0.5
        return DomainData(Split(x[:60], y[:60].long()), Split(x[60:], y[60:].long()))


class TwoBlocks(nn.Module):
    def __init__(self, input_shape, width: int = 8):
        super().__init__()
        c = input_shape[0]
        self.low = nn.Sequential(nn.Conv2d(c, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.high = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.out_features = width
        self.weights_info = "random"

    def forward(self, x):
        return self.high(self.low(x))

    def stages(self):
        return [self.low, self.high]

    default_freeze = 1


def check_twoblocks(options):
    if options["width"] < 1:
        raise UserError(f"refnet option `width` = {options['width']} must be at least 1")


class TopOnly(Strategy):
    """Train the head at head_lr and the last backbone stage at a tenth of it."""

    defaults = {"head_lr": 0.01}

    def phases(self, model, ctx):
        top = backbone_stages(model.backbone)[-1]
        self.trained = len(top)
        return [Phase("top", [{"params": list(model.head.parameters()), "lr": self.hparams["head_lr"]},
                              {"params": top, "lr": self.hparams["head_lr"] * 0.1}], ctx.steps)]

    def summary(self):
        return {"top_stage_tensors": self.trained}


class Critic(AdaptationLoss):
    defaults = {"weight": 1.0, "hidden": 16, "lr_scale": 1.0}

    def setup(self, feature_dim, num_classes, ctx):
        self.critic = nn.Sequential(nn.Linear(feature_dim, self.hparams["hidden"]), nn.ReLU(),
                                    nn.Linear(self.hparams["hidden"], 1))

    def forward(self, batch):
        return (self.critic(batch.source_features).mean() - self.critic(batch.target_features).mean()) ** 2


class Sequential(Executor):
    name = "sequential"
    options = ()

    def __init__(self, settings, config, registry=None, log=print):
        super().__init__(settings, config, registry, log)
        worker.install(config, registry, log)

    def run_tasks(self, tasks):
        for task in tasks:
            yield task, worker.execute(task, self.config)


@hookimpl
def register_datasets(register):
    register("refdata", Bars, domains=Bars.domains, modality=IMAGE, num_classes=3, classes=Bars.classes,
             defaults={"seed": 0, "size": 8}, description="bars in two domains")


@hookimpl
def register_backbones(register):
    register("refnet", TwoBlocks, modality=IMAGE, defaults={"width": 8}, check_options=check_twoblocks,
             description="two conv blocks")


@hookimpl
def register_strategies(register):
    register("top-only", TopOnly)


@hookimpl
def register_adaptation_losses(register):
    register("critic", Critic)


@hookimpl
def register_executors(register):
    register("sequential", Sequential, description="every task here, in order")
'''


def test_a_plugin_written_from_the_reference_runs_a_grid(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "reference_plugin.py").write_text(PLUGIN)
    listed = json.loads(run_cli("--plugins-dir", plugins, "plugins", "--json").stdout)
    assert listed["broken"] == [], listed["broken"]
    detail = json.loads(run_cli("--plugins-dir", plugins, "plugins", "critic", "--json").stdout)
    assert detail["options"]["lr_scale"]["default"] == 1.0
    bad = run_cli("--plugins-dir", plugins, "run", "--backbone", "refnet", "--source", "refdata:a", "--target", "refdata:b",
                  "--set", "refnet.width=0", "--results-dir", tmp_path / "bad")
    assert bad.returncode == 2 and "refnet option `width` = 0" in bad.stderr
    out = tmp_path / "runs"
    proc = run_cli("--plugins-dir", plugins, "run", "--backbone", "refnet", "--source", "refdata:a", "--target", "refdata:b",
                   "--strategy", "top-only,finetune", "--loss", "critic", "--shots", "3", "--executor", "sequential",
                   "--set", "refdata.size=10", "--results-dir", out, *FAST_TRAIN, "--set", "train.int8=false")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = read_results(out)
    assert sorted(r["strategy"] for r in results) == ["finetune", "top-only"]
    for r in results:
        assert r["status"] == "ok", r["error"]
        assert r["input_shape"] == [1, 10, 10] and r["backbone_weights"] == "random"
    top = next(r for r in results if r["strategy"] == "top-only")
    assert top["strategy_summary"] == {"top_stage_tensors": 2}
    assert len(top["lr_groups"][0]["lrs"]) == 3  # head, top stage, the critic the loss owns
    board = run_cli("leaderboard", out, "--format", "csv")
    assert board.returncode == 0 and "top-only" in board.stdout and "critic" in board.stdout
