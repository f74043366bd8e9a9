"""torchvision CNN backbones with the classifier removed and the stem adapted to small inputs.

Every backbone takes a ``weights`` option: ``""`` (random initialisation), the name of a
torchvision weights enum member (``"DEFAULT"``, ``"IMAGENET1K_V1"``...; downloaded once into
torch's hub cache, so this needs the network the first time), or the path of a local state dict
in torchvision's key layout. The backbone's ``weights_info`` says which was used (the runner
records it). Inputs with other than 3 channels reuse pretrained first-layer filters summed over
the colour channels.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from tlbench import hookimpl
from tlbench.plugin.errors import UserError


def _models():
    """torchvision.models, imported on first use: it costs seconds, and listing plugins or
    validating a grid needs none of it."""
    from torchvision import models

    return models


MAX_INPUT_SIZE = 2048  # the `input_size` option's upper bound (pixels per side)
SMALL_INPUT = 64  # below this side length, `small_input_stem` keeps full resolution in the stem


def _looks_like_path(weights: str) -> bool:
    return any(sep in weights for sep in ("/", "\\")) or weights.endswith((".pth", ".pt", ".bin"))


def _weights_enum(arch: str, name: str):
    enum = _models().get_model_weights(arch)
    try:
        return enum[name]
    except KeyError:
        known = ", ".join(["DEFAULT"] + [m.name for m in enum])
        raise UserError(f"{arch} has no torchvision weights {name!r}; known: {known}, or a local .pth path") from None


def check_weights_option(arch: str, weights: str) -> None:
    """Cheap validation before training: the enum name exists, or the local file exists."""
    if not weights:
        return
    if _looks_like_path(weights):
        if not Path(weights).is_file():
            raise UserError(f"{arch} weights file {weights!r} does not exist; give a torchvision state dict path")
    else:
        _weights_enum(arch, weights)


def load_weights(arch: str, weights: str) -> tuple[dict, str]:
    """(state dict, description) for a weights option; failures are one-line UserErrors."""
    check_weights_option(arch, weights)
    if _looks_like_path(weights):
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unpickling failure is the user's file
            raise UserError(f"cannot load {arch} weights file {weights!r}: {type(exc).__name__}: {exc}") from None
        return state, f"file:{weights}"
    member = _weights_enum(arch, weights)
    try:
        state = member.get_state_dict(progress=False, check_hash=True)
    except Exception as exc:  # noqa: BLE001 - offline, proxy, disk: all mean "not available"
        raise UserError(
            f"cannot get torchvision weights {arch} {member.name} ({type(exc).__name__}: {str(exc)[:120]}); "
            f"download them once with network access (into {torch.hub.get_dir()}) or pass a local .pth path"
        ) from None
    return state, f"torchvision:{type(member).__name__}.{member.name}"


def _first_conv(net: nn.Module) -> tuple[nn.Module, str, nn.Conv2d]:
    """(parent, attribute, conv) of the first convolution of a torchvision CNN."""
    for name, module in net.named_modules():
        if isinstance(module, nn.Conv2d):
            parent_name, _, attr = name.rpartition(".")
            return net.get_submodule(parent_name) if parent_name else net, attr, module
    raise ValueError("network has no convolution")


def _fit_channels(conv: nn.Conv2d, channels: int, pretrained: bool) -> nn.Conv2d:
    """The first conv for ``channels`` inputs; pretrained RGB filters are summed (grey) or repeated."""
    if conv.in_channels == channels:
        return conv
    new = nn.Conv2d(channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=conv.bias is not None)
    if pretrained:
        with torch.no_grad():
            mean = conv.weight.mean(dim=1, keepdim=True)
            new.weight.copy_(mean.repeat(1, channels, 1, 1) * (3.0 / channels))
            if conv.bias is not None:
                new.bias.copy_(conv.bias)
    return new


class TorchvisionFeatures(nn.Module):
    """A torchvision classifier network with its classifier replaced by the identity.

    ``small_input_stem`` on inputs under 64 px keeps resolution in the stem (ResNet: 3x3/1 conv,
    no max-pool, CIFAR-style; MobileNet/EfficientNet: stride-1 first conv), more accurate on tiny
    images and several times slower. VGG keeps only as many 2x pools as the input size allows.
    """

    def __init__(self, input_shape, arch: str, weights: str = "", small_input_stem: bool = False):
        super().__init__()
        channels, height, width = input_shape
        net = getattr(_models(), arch)(weights=None)
        self.weights_info = "random"
        if weights:
            state, self.weights_info = load_weights(arch, weights)
            try:
                net.load_state_dict(state, strict=True)
            except RuntimeError as exc:
                raise UserError(f"weights {weights!r} do not fit {arch}: {str(exc).splitlines()[-1].strip()[:200]}") from None
        small = small_input_stem and min(height, width) < SMALL_INPUT
        if arch.startswith("resnet"):
            if small:
                net.conv1 = nn.Conv2d(channels, 64, 3, stride=1, padding=1, bias=False)
                net.maxpool = nn.Identity()
                self.weights_info += "" if not weights else " (stem re-initialised)"
            else:
                net.conv1 = _fit_channels(net.conv1, channels, bool(weights))
            self.out_features = net.fc.in_features
            net.fc = nn.Identity()
        else:
            parent, attr, conv = _first_conv(net)
            conv = _fit_channels(conv, channels, bool(weights))
            if small:
                conv.stride = (1, 1)
            setattr(parent, attr, conv)
            if arch.startswith("vgg"):
                self.out_features = _fit_vgg_pools(net, min(height, width))
            else:
                self.out_features = _last_linear(net.classifier).in_features
            net.classifier = nn.Identity()
        self.net = net

    def forward(self, x):
        return self.net(x)

    def stages(self) -> list[nn.Module] | None:
        """Blocks from input to output (see tlbench.training.stages): ResNet stem + layer1..4; MobileNet and
        EfficientNet the children of ``features``; VGG none (split by registration order)."""
        net = self.net
        if hasattr(net, "layer1"):
            return [nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool), net.layer1, net.layer2, net.layer3, net.layer4]
        if hasattr(net, "features") and not any(isinstance(m, nn.MaxPool2d) for m in net.features):
            return list(net.features.children())
        return None


def _last_linear(classifier: nn.Module) -> nn.Linear:
    return next(m for m in classifier.modules() if isinstance(m, nn.Linear))


def _fit_vgg_pools(net: nn.Module, side: int) -> int:
    """Drop VGG max-pools an input of ``side`` px cannot afford; pool globally; return features."""
    pools = [i for i, m in enumerate(net.features) if isinstance(m, nn.MaxPool2d)]
    affordable = max(0, side.bit_length() - 1)  # floor(log2(side)) halvings keep >= 1 px
    for index in pools[affordable:]:
        net.features[index] = nn.Identity()
    net.avgpool = nn.AdaptiveAvgPool2d(1)
    return [m for m in net.features if isinstance(m, nn.Conv2d)][-1].out_channels


ARCHS = {
    "resnet18": ("ResNet-18", 512),
    "resnet50": ("ResNet-50", 2048),
    "vgg11_bn": ("VGG-11 with batch norm", 512),
    "mobilenet_v3_small": ("MobileNetV3-Small", 576),
    "efficientnet_b0": ("EfficientNet-B0", 1280),
}


def _factory(arch: str):
    def build(input_shape, weights: str = "", small_input_stem: bool = False, input_size: int = 0):
        return TorchvisionFeatures(input_shape, arch, weights, small_input_stem)

    build.__name__ = arch
    build.__doc__ = f"{ARCHS[arch][0]} feature extractor ({ARCHS[arch][1]} features); see TorchvisionFeatures."
    return build


def _checker(arch: str):
    def check(options: dict) -> None:
        check_weights_option(arch, options.get("weights", ""))
        size = options.get("input_size", 0)
        if size != 0 and not 8 <= size <= MAX_INPUT_SIZE:
            raise UserError(f"{arch} option `input_size` = {size} is out of range; use 0 (the dataset's size) or 8..{MAX_INPUT_SIZE}")

    return check


resnet18 = _factory("resnet18")


@hookimpl
def register_backbones(register):
    for arch, (title, features) in ARCHS.items():
        register(
            arch,
            _factory(arch),
            modality="image",
            defaults={"small_input_stem": False, "weights": "", "input_size": 0},
            option_ranges={"input_size": (0, MAX_INPUT_SIZE)},  # 0: the dataset's own size
            check_options=_checker(arch),
            pretrained=lambda options: bool(options.get("weights")),  # usable as source `pretrained`
            description=f"torchvision {title} ({features}-d features); weights='DEFAULT' or a .pth path for ImageNet",
        )
