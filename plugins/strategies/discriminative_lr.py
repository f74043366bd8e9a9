"""`discriminative-lr`: fine-tune with learning rates decaying layer by layer toward the input."""

from tlbench import hookimpl
from tlbench.plugin.contracts import Phase
from tlbench.training.stages import backbone_stages

from tlbench_plugins.strategies.basic import FineTune


def layerwise_groups(model, lr: float, decay: float) -> list[dict]:
    """Head at ``lr``; the backbone stage ``k`` steps below the head at ``lr * decay**k``."""
    stages = backbone_stages(model.backbone)
    groups = [{"params": list(model.head.parameters()), "lr": lr, "name": "head"}]
    for k, stage in enumerate(reversed(stages), start=1):
        groups.append({"params": stage, "lr": lr * decay**k, "name": f"stage{len(stages) - k}"})
    return groups


class DiscriminativeLR(FineTune):
    """Every layer trains from the source weights; the head at the base learning rate and each
    backbone stage (tlbench.training.stages) below it at ``decay`` times the rate of the stage above."""

    defaults = {"decay": 0.5, "reset_head": False}
    option_ranges = {"decay": (1e-12, 1.0)}

    def phases(self, model, ctx):
        groups = layerwise_groups(model, ctx.lr, self.hparams["decay"])
        return [Phase("discriminative-lr", groups, ctx.steps)]


def _check_options(options: dict) -> None:
    from tlbench.plugin.errors import UserError

    if not 0 < options["decay"] <= 1:
        raise UserError(f"discriminative-lr option `decay` = {options['decay']!r} must be in (0, 1]")


@hookimpl
def register_strategies(register):
    register("discriminative-lr", DiscriminativeLR, check_options=_check_options)
