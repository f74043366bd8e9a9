"""`l2sp`: fine-tune with an L2 penalty toward the source weights (Li et al., 2018)."""

import torch

from tlbench import hookimpl

from tlbench_plugins.strategies.basic import FineTune


class L2SP(FineTune):
    """``finetune`` plus ``alpha/2 * ||w - w_source||^2`` over the backbone's parameters and
    ``beta/2 * ||w_head||^2`` over the head's, added to the loss at every step."""

    defaults = {"alpha": 0.1, "beta": 0.01, "backbone_lr_scale": 0.1, "reset_head": False}
    option_ranges = {"alpha": (0.0, 1000000.0), "beta": (0.0, 1000000.0), "backbone_lr_scale": (0.0, 100.0)}

    def setup(self, model, ctx):
        super().setup(model, ctx)
        if ctx.source_state is None:
            raise ValueError("l2sp needs the source model's weights (ctx.source_state)")
        self._anchors = [
            (p, ctx.source_state[f"backbone.{name}"].to(p.device, p.dtype).detach())
            for name, p in model.backbone.named_parameters()
        ]
        self._head = list(model.head.parameters())

    def regulariser(self, model):
        alpha, beta = self.hparams["alpha"], self.hparams["beta"]
        to_source = sum(((p - p0) ** 2).sum() for p, p0 in self._anchors if p.requires_grad)
        head = sum((p**2).sum() for p in self._head if p.requires_grad)
        return torch.as_tensor(0.5 * alpha * to_source + 0.5 * beta * head)

    def distance_to_source(self) -> float:
        """The backbone's Euclidean distance from the source weights now."""
        with torch.no_grad():
            return float(sum(((p - p0) ** 2).sum() for p, p0 in self._anchors) ** 0.5)


@hookimpl
def register_strategies(register):
    register("l2sp", L2SP)
