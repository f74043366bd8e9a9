"""The three baseline strategies: `scratch`, `linear-probe` and `finetune`."""

from tlbench import hookimpl
from tlbench.plugin.contracts import Phase, Strategy


class Scratch(Strategy):
    """No transfer: random initialisation, every layer trained on the target shots only."""

    init_from_source = False


class LinearProbe(Strategy):
    """Frozen source backbone; only the (new) linear head trains."""

    defaults = {"head_lr": 0.01, "reset_head": True}
    option_ranges = {"head_lr": (1e-12, 10.0)}

    def setup(self, model, ctx):
        # With no target labels a new head could never learn: keep the source head then.
        if self.hparams["reset_head"] and ctx.target_labeled is not None:
            model.head.reset_parameters()

    def phases(self, model, ctx):
        return [Phase("linear-probe", [{"params": list(model.head.parameters()), "lr": self.hparams["head_lr"]}], ctx.steps)]


class FineTune(Strategy):
    """Every layer starts from the source model and trains on the target; the backbone at
    ``backbone_lr_scale`` times the head's learning rate, so a few target shots refine the
    source features instead of wiping them out."""

    defaults = {"reset_head": False, "backbone_lr_scale": 0.1}
    option_ranges = {"backbone_lr_scale": (0.0, 100.0)}

    def setup(self, model, ctx):
        if self.hparams["reset_head"] and ctx.target_labeled is not None:
            model.head.reset_parameters()

    def phases(self, model, ctx):
        backbone_lr = ctx.lr * self.hparams["backbone_lr_scale"]
        groups = [
            {"params": list(model.backbone.parameters()), "lr": backbone_lr},
            {"params": list(model.head.parameters()), "lr": ctx.lr},
        ]
        return [Phase("finetune", groups, ctx.steps)]


@hookimpl
def register_strategies(register):
    register("scratch", Scratch)
    register("linear-probe", LinearProbe)
    register("finetune", FineTune)
