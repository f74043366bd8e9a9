"""`lp-ft`: a linear probe on the frozen source backbone, then a full fine-tune from that head
(Kumar et al., 2022)."""

from tlbench import hookimpl
from tlbench.plugin.contracts import Phase

from tlbench_plugins.strategies.basic import FineTune


class LPFT(FineTune):
    """Phase ``linear-probe`` (``lp_fraction`` of the steps) trains only a fresh head at
    ``head_lr`` with the backbone frozen; phase ``finetune`` then trains everything, the backbone
    at ``backbone_lr_scale`` times the head's learning rate. Both phases show up in the run's log
    and in ``train_phases``."""

    defaults = {"lp_fraction": 0.5, "head_lr": 0.01, "backbone_lr_scale": 0.1, "reset_head": True}
    option_ranges = {"lp_fraction": (0.0, 1.0), "head_lr": (1e-12, 10.0), "backbone_lr_scale": (0.0, 100.0)}

    def phases(self, model, ctx):
        fraction = min(1.0, max(0.0, self.hparams["lp_fraction"]))
        lp_steps = round(fraction * ctx.steps)
        head = list(model.head.parameters())
        return [
            Phase("linear-probe", [{"params": head, "lr": self.hparams["head_lr"]}], lp_steps),
            Phase(
                "finetune",
                [
                    {"params": list(model.backbone.parameters()), "lr": ctx.lr * self.hparams["backbone_lr_scale"]},
                    {"params": head, "lr": ctx.lr},
                ],
                ctx.steps - lp_steps,
            ),
        ]


@hookimpl
def register_strategies(register):
    register("lp-ft", LPFT)
