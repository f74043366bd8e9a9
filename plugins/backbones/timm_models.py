"""`timm` backbones: models of PyTorch Image Models (timm) as feature extractors.

``timm`` takes any timm model by name (``--set timm.model=convnext_atto``); a few small ones are
also registered under their own names (``timm-resnet18``...) so leaderboards tell them apart.
Weights: random by default (works offline); ``pretrained = true`` loads timm's weights from the
local Hugging Face cache only (``HF_HUB_OFFLINE=1`` unless the user set that variable, so a
missing file fails at once instead of retrying the network); ``checkpoint = PATH`` loads a local
state dict strictly. The first convolution follows the dataset's channel count (timm folds
pretrained RGB filters for other counts). timm is imported on first use: listing plugins never
pays for it, and a missing timm is a one-line error.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path

import torch
from torch import nn

from tlbench import hookimpl
from tlbench.plugin.errors import UserError, closest_first

INSTALL = 'pip install "tlbench[timm]"'
DEFAULT_MODEL = "resnet18"
# Small models registered as backbones of their own: timm name -> description.
CURATED = {
    "resnet18": "ResNet-18",
    "mobilenetv3_small_100": "MobileNetV3-Small 1.0",
    "efficientnet_b0": "EfficientNet-B0",
    "convnext_atto": "ConvNeXt-Atto (needs inputs of at least 32 px: set input_size=32 for digits)",
}
OPTIONS = {"pretrained": False, "checkpoint": "", "input_size": 0}
OPTION_RANGES = {"input_size": (0, 2048)}  # 0: the dataset's own size
SHOWN = 8  # how many close names an unknown-model error lists


def _timm():
    """The timm package, imported on first use; a missing install is a one-line UserError."""
    try:
        import timm
    except ImportError:
        raise UserError(f"timm backbones need the package timm: {INSTALL}") from None
    return timm


def _one_line(text: str, limit: int = 200) -> str:
    return " ".join(str(text).split())[:limit]


def check_model_name(name: str, backbone: str = "timm") -> None:
    """A UserError unless ``name`` is a timm model (optionally ``arch.tag`` with a known tag)."""
    timm = _timm()
    arch, _, tag = name.partition(".")
    if not name or not timm.is_model(arch):
        close = ", ".join(closest_first(name, timm.list_models())[:SHOWN])
        raise UserError(
            f"unknown timm model {name!r} for backbone {backbone!r}; closest: {close} "
            f"(all: python -c \"import timm; print(timm.list_models())\")"
        )
    if tag:
        tags = timm.list_pretrained(f"{arch}.*")
        if name not in tags:
            raise UserError(f"timm model {arch!r} has no weights tag {tag!r}; known: {', '.join(closest_first(name, tags)) or '(none)'}")


def check_checkpoint(checkpoint: str, backbone: str) -> None:
    """A UserError unless the ``checkpoint`` option is empty or an existing file."""
    if checkpoint and not Path(checkpoint).is_file():
        raise UserError(f"{backbone} checkpoint file {checkpoint!r} does not exist; give a state dict saved with torch.save or a .safetensors file")


def load_checkpoint(path: str) -> dict:
    """The state dict in ``path`` (torch.save or .safetensors; a ``state_dict``/``model`` wrapper
    is unwrapped), loaded without unpickling code; any failure is a one-line UserError."""
    check_checkpoint(path, "timm")
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - whatever the file holds, it is the user's file
        raise UserError(f"cannot load timm checkpoint {path!r}: {type(exc).__name__}: {_one_line(exc, 120)}") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"timm checkpoint {path!r} is not a state dict (a dict of tensors)")
    return state


def _fit_state(net: nn.Module, state: dict, in_chans: int) -> dict:
    """Drop the checkpoint's classifier (the core adds its own head) and fold RGB first-layer
    filters to the data's channel count, as timm does for its pretrained weights."""
    from timm.models import adapt_input_conv

    own = net.state_dict()
    classifier = net.pretrained_cfg.get("classifier") or ()
    heads = (classifier,) if isinstance(classifier, str) else tuple(classifier)
    state = {k: v for k, v in state.items() if k in own or not any(k.startswith(h + ".") for h in heads)}
    first = f"{net.pretrained_cfg.get('first_conv')}.weight"
    if first in state and first in own and state[first].dim() == 4 and state[first].shape[1] != in_chans:
        state[first] = adapt_input_conv(in_chans, state[first])
    return state


def apply_checkpoint(net: nn.Module, path: str, in_chans: int, name: str) -> None:
    """Load the state dict file ``path`` into ``net`` strictly; a mismatch names the file."""
    state = _fit_state(net, load_checkpoint(path), in_chans)
    own = net.state_dict()
    missing, unexpected = [k for k in own if k not in state], [k for k in state if k not in own]
    if missing or unexpected:
        raise UserError(
            f"timm checkpoint {path!r} does not fit {name}: {len(missing)} missing keys ({', '.join(missing[:3])}), "
            f"{len(unexpected)} unexpected ({', '.join(unexpected[:3])})"
        )
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        lines = [line for line in str(exc).splitlines()[1:] if line.strip()]
        raise UserError(f"timm checkpoint {path!r} does not fit {name}: {_one_line(lines[0] if lines else exc)}") from None


@contextlib.contextmanager
def local_hub_only():
    """``HF_HUB_OFFLINE=1`` for the duration (unless the user set the variable): huggingface_hub
    then answers from its local cache at once instead of retrying the network."""
    if "HF_HUB_OFFLINE" in os.environ:
        yield
        return
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants = sys.modules.get("huggingface_hub.constants")  # read the variable when imported
    before = getattr(constants, "HF_HUB_OFFLINE", None)
    if constants is not None:
        constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        os.environ.pop("HF_HUB_OFFLINE", None)
        if constants is not None:
            constants.HF_HUB_OFFLINE = before


@contextlib.contextmanager
def _quiet_hub():
    """huggingface_hub's retry warnings kept off the terminal (a failure still ends in one line)."""
    hub_logger = logging.getLogger("huggingface_hub")
    level = hub_logger.level
    hub_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        hub_logger.setLevel(level)


def _weights_cfg(name: str):
    """timm's pretrained config for ``name`` (``arch`` = its default tag), or a UserError."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    if cfg is None or not (cfg.hf_hub_id or cfg.url or cfg.file):
        raise UserError(f"timm has no pretrained weights for {name!r}; set pretrained=false or give a checkpoint")
    return cfg


def _not_cached(name: str, label: str, why: str = "") -> UserError:
    hub = getattr(sys.modules.get("huggingface_hub.constants"), "HF_HUB_CACHE", "~/.cache/huggingface/hub")
    return UserError(
        f"timm weights {label} are not in the local Hugging Face cache ({hub}{'; ' + why if why else ''}); "
        f"fetch them once with network access: HF_HUB_OFFLINE=0 python -c \"import timm; timm.create_model('{name}', pretrained=True)\", "
        "or set pretrained=false, or give checkpoint=PATH"
    )


def check_pretrained_cached(name: str) -> None:
    """At grid validation: a UserError when ``name``'s hub weights are not cached locally — unless
    the user allows downloads (HF_HUB_OFFLINE=0) and the hub answers, probed once in seconds (an
    unreachable hub would otherwise cost a minute of retries at build time). Weights that come by
    URL are not checked."""
    _timm()
    cfg = _weights_cfg(name)
    if not cfg.hf_hub_id:
        return
    from huggingface_hub import constants, try_to_load_from_cache

    files = [cfg.hf_hub_filename] if cfg.hf_hub_filename else ["model.safetensors", "pytorch_model.bin"]
    if any(isinstance(try_to_load_from_cache(cfg.hf_hub_id, f), str) for f in files):
        return
    label = f"{cfg.architecture}.{cfg.tag}" if cfg.tag else name
    user = os.environ.get("HF_HUB_OFFLINE")
    if user is None or user.strip().upper() in ("1", "ON", "YES", "TRUE"):
        raise _not_cached(name, label)
    from tlbench.utils.network import unreachable_reason

    why = unreachable_reason(constants.ENDPOINT)
    if why is not None:
        raise _not_cached(name, label, f"downloads are allowed but the hub at {constants.ENDPOINT} is unreachable: {why}")


def _pretrained(timm, name: str, in_chans: int) -> tuple[nn.Module, str]:
    """(timm model with its pretrained weights from the local cache, weights description)."""
    cfg = _weights_cfg(name)
    label = f"{cfg.architecture}.{cfg.tag}" if cfg.tag else name
    try:
        with local_hub_only(), _quiet_hub():
            net = timm.create_model(name, pretrained=True, num_classes=0, in_chans=in_chans)
    except Exception as exc:  # noqa: BLE001 - offline, missing file, broken cache: all "not available"
        raise _not_cached(name, label, type(exc).__name__) from None
    return net, f"timm:{label}"


class _Stage(nn.Module):
    """A view of some backbone parameters as one depth stage (not a child of the backbone)."""

    def __init__(self, params):
        super().__init__()
        self.held = nn.ParameterList(params)


def feature_stages(net: nn.Module) -> list[nn.Module] | None:
    """Stages from timm's ``feature_info``, input first: each feature module ends a stage; a
    module owning parameters joins the first stage whose end it does not pass (registration
    order), and modules after the last feature (head convolutions, final norms) join the last."""
    info = getattr(net, "feature_info", None)
    names = [f.get("module") for f in info] if isinstance(info, list) else []
    order = {name: i for i, (name, _) in enumerate(net.named_modules())}
    if not names or any(n not in order for n in names):
        return None
    ends = [max(i for n, i in order.items() if n == name or n.startswith(name + ".")) for name in names]
    if ends != sorted(ends):
        return None
    groups: list[list] = [[] for _ in ends]
    for name, module in net.named_modules():
        own = list(module.parameters(recurse=False))
        if own:
            index = next((i for i, end in enumerate(ends) if order[name] <= end), len(ends) - 1)
            groups[index].extend(own)
    return [_Stage(g) for g in groups if g] or None


class TimmFeatures(nn.Module):
    """A timm model without its classifier: ``(batch, out_features)`` pooled features.

    ``out_features`` is measured by one forward pass at build time (it is ``num_features``, or
    ``head_hidden_size`` for models with a head convolution such as MobileNetV3); an input too
    small for the model is a one-line error there. ``stages()`` follow ``feature_info``;
    ``default_freeze`` keeps the top two stages training. ``weights_info`` says which weights.
    """

    def __init__(self, input_shape, name: str = DEFAULT_MODEL, pretrained: bool = False, checkpoint: str = "",
                 backbone: str = "timm"):
        super().__init__()
        timm = _timm()
        check_model_name(name, backbone)
        self.backbone_name = backbone
        in_chans = int(input_shape[0])
        if pretrained and not checkpoint:
            self.net, self.weights_info = _pretrained(timm, name, in_chans)
        else:
            self.net, self.weights_info = timm.create_model(name, num_classes=0, in_chans=in_chans), "random"
        if checkpoint:
            apply_checkpoint(self.net, checkpoint, in_chans, name)
            self.weights_info = f"file:{checkpoint}"
        self.model_name = name
        self.out_features = self._probe(tuple(input_shape))
        stages = self.stages()
        self.default_freeze = max(0, len(stages) - 2) if stages else None

    def _probe(self, input_shape) -> int:
        """The feature width, from one eval-mode forward pass of zeros (no RNG, no statistics)."""
        self.net.eval()
        try:
            with torch.no_grad():
                out = self.net(torch.zeros(1, *input_shape))
        except (RuntimeError, AssertionError, ValueError) as exc:  # too small, or a fixed-size model (ViT)
            cfg = self.net.pretrained_cfg
            side = cfg.get("input_size", (3, 224, 224))[-1] if cfg.get("fixed_input_size") else 32
            raise UserError(
                f"timm model {self.model_name} cannot take {'x'.join(map(str, input_shape))} inputs "
                f"({_one_line(exc, 100)}); resize them with --set {self.backbone_name}.input_size={side}"
            ) from None
        finally:
            self.net.train()
        if out.dim() != 2:
            raise UserError(f"timm model {self.model_name} gives {tuple(out.shape)} features, not (batch, features)")
        return int(out.shape[1])

    def forward(self, x):
        return self.net(x)

    def stages(self) -> list[nn.Module] | None:
        """Blocks from input to output, cut at timm's feature_info modules (see feature_stages)."""
        return feature_stages(self.net)


def timm_backbone(input_shape, model: str = DEFAULT_MODEL, pretrained: bool = False, checkpoint: str = "", input_size: int = 0):
    """Any timm model as a feature extractor (``input_size`` is applied by the core: 0 = the data's)."""
    return TimmFeatures(input_shape, model, pretrained, checkpoint, "timm")


def _curated(arch: str):
    def build(input_shape, pretrained: bool = False, checkpoint: str = "", input_size: int = 0):
        return TimmFeatures(input_shape, arch, pretrained, checkpoint, f"timm-{arch}")

    build.__name__ = f"timm_{arch}"
    build.__doc__ = f"timm {CURATED[arch]} feature extractor; see TimmFeatures."
    return build


def _checker(backbone: str, fixed: str | None):
    def check(options: dict) -> None:
        check_checkpoint(options.get("checkpoint", ""), backbone)
        if options.get("checkpoint") and options.get("pretrained"):
            raise UserError(f"{backbone}: give pretrained=true or a checkpoint file, not both")
        if options.get("input_size", 0) < 0:
            raise UserError(f"{backbone} option input_size must be >= 0 (0 = the dataset's size)")
        check_model_name(fixed or options.get("model", ""), backbone)
        if options.get("pretrained"):
            check_pretrained_cached(fixed or options["model"])

    return check


def _has_weights(options: dict) -> bool:
    """Do these options load trained weights (timm's pretrained ones or a local checkpoint)?"""
    return bool(options.get("pretrained") or options.get("checkpoint"))


@hookimpl
def register_backbones(register):
    register(
        "timm",
        timm_backbone,
        modality="image",
        defaults={"model": DEFAULT_MODEL, **OPTIONS},
        option_ranges=OPTION_RANGES,
        check_options=_checker("timm", None),
        pretrained=_has_weights,  # usable as source `pretrained`
        description="any timm model (--set timm.model=NAME); random weights, pretrained=true (local HF cache) or checkpoint=PATH",
    )
    for arch, title in CURATED.items():
        register(
            f"timm-{arch}",
            _curated(arch),
            modality="image",
            defaults=dict(OPTIONS),
            option_ranges=OPTION_RANGES,
            check_options=_checker(f"timm-{arch}", arch),
            pretrained=_has_weights,
            description=f"timm {title}; random weights, pretrained=true (local HF cache) or checkpoint=PATH",
        )
