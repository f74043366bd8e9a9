"""A pretrained candidate's source predictions come from its backbone's ``pretrained_logits``."""

import numpy as np
import torch
from torch import nn

from tlbench.training.model import TransferModel
from tlbench.transferability.features import extract


class Backbone(nn.Module):
    """Four features; its 'pretrained classifier' has three classes."""

    out_features = 4

    def __init__(self):
        super().__init__()
        self.body = nn.Linear(6, 4)
        self.classifier = nn.Linear(4, 3)

    def forward(self, x):
        return self.body(x)


class WithLogits(Backbone):
    def pretrained_logits(self, x):
        return self.classifier(self.forward(x))


class OldName(Backbone):
    def imagenet_logits(self, x):  # not the core's name: ignored
        return self.classifier(self.forward(x))


def candidate(backbone):
    model = TransferModel(backbone, 2)  # a pretrained source: no trained source head
    model.has_source_head = False
    return model


def test_pretrained_logits_give_the_source_softmax():
    torch.manual_seed(0)
    backbone, x = WithLogits(), torch.randn(5, 6)
    features, probs = extract(candidate(backbone), x, "cpu")
    assert features.shape == (5, 4) and probs.shape == (5, 3)
    expected = torch.softmax(backbone.pretrained_logits(x).double(), 1).detach().numpy()
    np.testing.assert_allclose(probs, expected, atol=1e-6)


def test_other_names_and_plain_backbones_give_none():
    for backbone in (OldName(), Backbone()):
        features, probs = extract(candidate(backbone), torch.randn(5, 6), "cpu")
        assert features.shape == (5, 4) and probs is None


def test_efficientnet_lite_offers_pretrained_logits():
    from tlbench_plugins.backbones.efficientnet_lite import EfficientNetLite0

    net = EfficientNetLite0((3, 32, 32)).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        assert net.pretrained_logits(x).shape == (2, 1000)
        assert torch.equal(net.pretrained_logits(x), net.imagenet_logits(x))
