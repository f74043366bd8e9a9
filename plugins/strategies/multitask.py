"""`multitask`: joint training on labeled source and labeled target, one head per domain."""

import copy

import torch.nn.functional as F
from torch import nn

from tlbench import hookimpl
from tlbench.plugin.contracts import Phase

from tlbench_plugins.strategies.basic import FineTune


class MultiTask(FineTune):
    """A shared backbone feeds the model's head (the target task, exported) and a source head the
    strategy owns (started from the source model's head; trained, never exported). Each step adds
    ``source_weight`` times the source cross-entropy to the target shots' cross-entropy."""

    defaults = {"source_weight": 1.0, "backbone_lr_scale": 1.0, "reset_head": False}
    option_ranges = {"source_weight": (0.0, 1000000.0), "backbone_lr_scale": (0.0, 100.0)}
    uses_source_labels = True

    def setup(self, model, ctx):
        super().setup(model, ctx)
        # the source task's own head: its size is the source's class count (task transfer differs)
        size = ctx.source_num_classes or model.head.out_features
        self.source_head = (copy.deepcopy(model.head) if size == model.head.out_features
                            else nn.utils.skip_init(nn.Linear, model.head.in_features, size))
        if ctx.source_state is not None and "head.weight" in ctx.source_state:
            self.source_head.load_state_dict(
                {"weight": ctx.source_state["head.weight"], "bias": ctx.source_state["head.bias"]}
            )
        self.source_head.to(ctx.device)
        self.source_batches = 0

    def phases(self, model, ctx):
        # The head's group comes first: the strategy's source head trains at its rate (train.fit).
        groups = [
            {"params": list(model.head.parameters()), "lr": ctx.lr},
            {"params": list(model.backbone.parameters()), "lr": ctx.lr * self.hparams["backbone_lr_scale"]},
        ]
        return [Phase("multitask", groups, ctx.steps)]

    def source_loss(self, model, features, labels, index):
        self.source_batches += 1
        return self.hparams["source_weight"] * F.cross_entropy(self.source_head(features), labels)


@hookimpl
def register_strategies(register):
    register("multitask", MultiTask)
