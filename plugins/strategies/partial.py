"""`partial`: freeze the bottom stages of the source backbone; fine-tune the rest and the head."""

from tlbench import hookimpl
from tlbench.plugin.contracts import Phase
from tlbench.plugin.errors import UserError
from tlbench.training.stages import backbone_stages, default_freeze

from tlbench_plugins.strategies.basic import FineTune


def check_freeze(freeze: float) -> None:
    """``freeze``: negative = the backbone's default, a fraction in (0, 1), or a whole stage count."""
    if freeze < 0 or 0 < freeze < 1 or float(freeze).is_integer():
        return
    raise UserError(
        f"partial option `freeze` = {freeze!r} must be a whole number of stages (0, 1, 2...), "
        "a fraction strictly between 0 and 1, or -1 for the backbone's default"
    )


def frozen_stage_count(freeze: float, backbone, n_stages: int) -> int:
    """How many bottom stages to freeze for the ``freeze`` option (see :func:`check_freeze`)."""
    check_freeze(freeze)
    if freeze < 0:
        return default_freeze(backbone, n_stages)
    if freeze < 1:
        return min(n_stages, round(freeze * n_stages))
    return min(n_stages, int(freeze))


class Partial(FineTune):
    """The bottom ``freeze`` backbone stages (see tlbench.training.stages) stay exactly at the source
    weights, BatchNorm statistics included; the upper stages train at ``backbone_lr_scale`` times
    the head's learning rate, as in ``finetune``."""

    defaults = {"freeze": -1.0, "backbone_lr_scale": 0.1, "reset_head": False}
    option_ranges = {"freeze": (-1.0, 1000.0), "backbone_lr_scale": (0.0, 100.0)}

    def phases(self, model, ctx):
        stages = backbone_stages(model.backbone)
        frozen = frozen_stage_count(self.hparams["freeze"], model.backbone, len(stages))
        trained = [p for stage in stages[frozen:] for p in stage]
        self.frozen_stages = {"frozen_stages": frozen, "backbone_stages": len(stages)}
        ctx.log(f"partial: {frozen} of {len(stages)} backbone stages frozen")
        groups = [
            {"params": trained, "lr": ctx.lr * self.hparams["backbone_lr_scale"]},
            {"params": list(model.head.parameters()), "lr": ctx.lr},
        ]
        return [Phase("partial", groups, ctx.steps)]

    def summary(self):
        return dict(getattr(self, "frozen_stages", {}))


def _check_options(options: dict) -> None:
    check_freeze(options["freeze"])


@hookimpl
def register_strategies(register):
    register("partial", Partial, check_options=_check_options)
