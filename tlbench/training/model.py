"""The transfer model: a plugin backbone plus the classifier head the core adds."""

from __future__ import annotations

import torch
from torch import nn

from tlbench.plugin.errors import PluginError


class TransferModel(nn.Module):
    """``backbone`` (features) followed by a linear ``head`` (logits); this is what is exported."""

    def __init__(self, backbone: nn.Module, num_classes: int):
        super().__init__()
        out_features = getattr(backbone, "out_features", None)
        if not isinstance(out_features, int) or out_features <= 0:
            raise PluginError(f"backbone {type(backbone).__name__} has no positive integer `out_features`")
        self.backbone = backbone
        self.head = nn.Linear(out_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def build_model(entry, input_shape, num_classes: int, options: dict) -> TransferModel:
    """Instantiate a backbone entry for ``input_shape`` and attach a ``num_classes`` head."""
    backbone = entry.obj(tuple(input_shape), **options)
    if not isinstance(backbone, nn.Module):
        raise PluginError(f"backbone {entry.name!r} factory returned {type(backbone).__name__}, not an nn.Module")
    return TransferModel(backbone, num_classes)


def freeze_untrained(model: nn.Module) -> None:
    """Put modules whose own parameters are all frozen in eval mode, so their BatchNorm
    statistics stay bit-identical too; everything else trains."""
    model.train()
    for module in model.modules():
        own = list(module.parameters(recurse=False))
        if own and not any(p.requires_grad for p in own):
            module.eval()
