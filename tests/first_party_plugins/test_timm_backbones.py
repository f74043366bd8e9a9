"""timm backbones: features at digit sizes, timm's feature_info as stages, ONNX parity at another
batch size, `partial` freezing whole timm blocks, checkpoints and pretrained weights from a local
cache only, one-line errors at grid validation, and one CLI cell end to end."""

import os
import sys

import pytest
import torch

from conftest import FAST_TRAIN, read_results, run_cli
from tlbench.deploy.onnx_export import export_onnx, verify
from tlbench.grid import expand
from tlbench.plugin.contracts import TransferContext
from tlbench.plugin.errors import UserError
from tlbench.training.loop import pretrain_source, transfer
from tlbench.training.model import build_model
from tlbench.training.stages import backbone_stages

timm = pytest.importorskip("timm")

from tlbench_plugins.backbones.timm_models import INSTALL, TimmFeatures  # noqa: E402

FEATURES = {"resnet18": 512, "mobilenetv3_small_100": 1024, "efficientnet_b0": 1280, "convnext_atto": 320}
GRID = {"backbone": ["timm-resnet18"], "source": ["digits:mnist"], "target": ["digits:uci"], "strategy": ["finetune"],
        "loss": ["none"], "shots": [1], "seeds": [0]}


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
@pytest.mark.parametrize("arch", FEATURES)
def test_curated_timm_backbones_give_batch_by_out_features(registry, arch, shape):
    entry = registry.get("backbones", f"timm-{arch}")
    torch.manual_seed(0)
    if arch == "convnext_atto" and shape[1] < 32:  # its 4x stem + three 2x2 downsamplings need >= 32 px
        with pytest.raises(UserError, match=r"cannot take 1x28x28 inputs.*--set timm-convnext_atto\.input_size=32") as info:
            entry.obj(shape, **entry.defaults)
        assert "\n" not in str(info.value)
        return
    net = entry.obj(shape, **entry.defaults)
    assert net.weights_info == "random"
    assert net.net.get_submodule(net.net.pretrained_cfg["first_conv"]).in_channels == shape[0]
    net.eval()
    with torch.no_grad():
        out = net(torch.randn(3, *shape))
    assert out.shape == (3, net.out_features) == (3, FEATURES[arch])  # MobileNetV3: head conv, not num_features
    assert torch.isfinite(out).all()
    stages = backbone_stages(net)  # every parameter exactly once, one stage per feature_info module
    assert len(stages) == len(net.net.feature_info) and net.default_freeze == len(stages) - 2
    assert sorted(map(id, (p for s in stages for p in s))) == sorted(map(id, net.parameters()))


def test_generic_timm_backbone_takes_any_model_name(registry):
    entry = registry.get("backbones", "timm")
    assert entry.defaults == {"model": "resnet18", "pretrained": False, "checkpoint": "", "input_size": 0}
    net = entry.obj((1, 28, 28), **{**entry.defaults, "model": "resnet10t"})
    assert net.model_name == "resnet10t" and net.out_features == 512


def test_resnet_stages_are_stem_then_layers():
    net = TimmFeatures((1, 28, 28), "resnet18")
    stages = backbone_stages(net)
    r = net.net
    expected = [list(r.conv1.parameters()) + list(r.bn1.parameters())] + [list(getattr(r, f"layer{i}").parameters()) for i in range(1, 5)]
    assert [[id(p) for p in s] for s in stages] == [[id(p) for p in s] for s in expected]


@pytest.mark.parametrize("arch, shape", [("resnet18", (1, 28, 28)), ("convnext_atto", (3, 32, 32))])
def test_onnx_export_matches_torch_at_another_batch_size(registry, tmp_path, arch, shape):
    torch.manual_seed(0)
    model = build_model(registry.get("backbones", f"timm-{arch}"), shape, 10, {}).eval()
    path = tmp_path / f"{arch}.onnx"
    export_onnx(model, torch.randn(2, *shape), path, {"tlbench.labels": list("0123456789")}, dynamo=False)
    x = torch.randn(5, *shape)
    with torch.no_grad():
        ref = model(x)
    assert float(ref.std()) > 1e-3  # logits that differ, so agreement means something
    check = verify(path, ref, x, ref.argmax(1), "cpu", 5)
    assert check["onnx_max_abs_diff"] < 1e-4 and check["onnx_top1_agreement"] == 1.0


def test_partial_keeps_frozen_timm_stages_bit_identical(registry):
    toy = registry.get("datasets", "toy").obj()
    src, tgt = toy.load("a"), toy.load("b")
    torch.manual_seed(0)
    model = build_model(registry.get("backbones", "timm-resnet18"), (1, 8, 8), 3, {})
    pretrain_source(model, src.train, 1, 16, 0.01, torch.Generator().manual_seed(1))  # BN stats off their init
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ctx = TransferContext(
        source_state={k: v.clone() for k, v in model.state_dict().items()}, source_train=src.train,
        target_labeled=tgt.train, target_unlabeled=tgt.train.x, num_classes=3, shots=5, steps=6, lr=0.01,
        batch_size=16, device=torch.device("cpu"), generator=torch.Generator().manual_seed(0),
        augment=lambda x: x, log=lambda msg: None,
    )
    strategy = registry.get("strategies", "partial").obj()  # freeze = the backbone's default: 3 of 5
    transfer(model, strategy, registry.get("adaptation_losses", "none").obj(), ctx)
    assert strategy.summary() == {"frozen_stages": 3, "backbone_stages": 5}
    after = model.state_dict()
    changed = {k: not torch.equal(before[k], after[k]) for k in before}
    frozen = ("backbone.net.conv1.", "backbone.net.bn1.", "backbone.net.layer1.", "backbone.net.layer2.")
    assert [k for k in changed if k.startswith(frozen) and changed[k]] == []  # weights and running stats
    assert sum(k.startswith(frozen) for k in changed) > 20
    for prefix in ("backbone.net.layer3.", "backbone.net.layer4.", "head."):
        assert any(v for k, v in changed.items() if k.startswith(prefix)), prefix


def test_checkpoint_file_sets_the_weights_exactly(tmp_path):
    torch.manual_seed(1)
    reference = timm.create_model("resnet18", num_classes=0, in_chans=1)
    path = tmp_path / "r18.pth"
    torch.save(reference.state_dict(), path)
    torch.manual_seed(2)
    assert not torch.equal(TimmFeatures((1, 28, 28), "resnet18").net.conv1.weight, reference.conv1.weight)
    torch.manual_seed(2)
    net = TimmFeatures((1, 28, 28), "resnet18", checkpoint=str(path))
    assert net.weights_info == f"file:{path}"
    want = reference.state_dict()
    assert net.net.state_dict().keys() == want.keys()
    assert all(torch.equal(v, want[k]) for k, v in net.net.state_dict().items())
    # a full RGB ImageNet-layout checkpoint: classifier dropped, first-layer filters folded to grey
    full = timm.create_model("resnet18", num_classes=1000)
    torch.save({"state_dict": full.state_dict()}, tmp_path / "full.pth")
    grey = TimmFeatures((1, 28, 28), "resnet18", checkpoint=str(tmp_path / "full.pth"))
    torch.testing.assert_close(grey.net.conv1.weight, full.conv1.weight.sum(1, keepdim=True))
    assert torch.equal(grey.net.layer4[1].conv2.weight, full.layer4[1].conv2.weight)
    with pytest.raises(UserError, match=r"checkpoint '.*r18\.pth' does not fit efficientnet_b0: \d+ missing keys") as info:
        TimmFeatures((1, 28, 28), "efficientnet_b0", checkpoint=str(path))
    assert "\n" not in str(info.value)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot load timm checkpoint .*junk.pth"):
        TimmFeatures((1, 28, 28), "resnet18", checkpoint=str(tmp_path / "junk.pth"))


def test_grid_validation_errors_are_one_line(registry, tmp_path, monkeypatch):
    every = ["timm"] + [f"timm-{arch}" for arch in FEATURES]
    small = {"timm": {"model": "convnext_atto", "input_size": 32}, "timm-convnext_atto": {"input_size": 32}}
    assert len(expand({**GRID, "backbone": every, "set": small}, registry)) == 5
    cases = [
        ({"set": {"timm-resnet18": {"checkpoint": str(tmp_path / "missing.pth")}}}, r"timm-resnet18 checkpoint file .*missing\.pth' does not exist"),
        ({"backbone": ["timm"], "set": {"timm": {"model": "resnet1800"}}}, r"unknown timm model 'resnet1800' for backbone 'timm'; closest: resnet18"),
        ({"backbone": ["timm"], "set": {"timm": {"model": "resnet18.nope_in1k"}}}, r"no weights tag 'nope_in1k'; known: .*resnet18\.a1_in1k"),
        ({"set": {"timm-resnet18": {"pretrained": True, "checkpoint": __file__}}}, "not both"),
    ]
    for extra, message in cases:
        with pytest.raises(UserError, match=message) as info:
            expand({**GRID, **extra}, registry)
        assert "\n" not in str(info.value)
    monkeypatch.setitem(sys.modules, "timm", None)  # as if timm were not installed
    with pytest.raises(UserError, match="timm backbones need the package timm") as info:
        expand(GRID, registry)
    assert INSTALL in str(info.value)


def _fake_hub_cache(root, repo, state):
    """A Hugging Face hub cache holding ``state`` as ``repo``'s model.safetensors."""
    from safetensors.torch import save_file

    folder = root / f"models--{repo.replace('/', '--')}"
    snapshot = folder / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("0" * 40)
    save_file({k: v.contiguous() for k, v in state.items()}, snapshot / "model.safetensors")


def test_pretrained_loads_from_the_local_cache_only_and_says_how_to_get_missing_weights(registry, tmp_path, monkeypatch):
    import huggingface_hub.constants as hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path))
    seen, create = [], timm.create_model

    def recording(*args, **kwargs):  # huggingface_hub's offline switch while timm fetches weights
        seen.append((os.environ.get("HF_HUB_OFFLINE"), hub.HF_HUB_OFFLINE))
        return create(*args, **kwargs)

    monkeypatch.setattr(timm, "create_model", recording)
    with pytest.raises(UserError, match="resnet18.a1_in1k are not in the local Hugging Face cache.*HF_HUB_OFFLINE=0") as info:
        TimmFeatures((1, 28, 28), "resnet18", pretrained=True)
    assert "\n" not in str(info.value)
    assert seen == [("1", True)]
    pretrained_grid = {**GRID, "set": {"timm-resnet18": {"pretrained": True}}}
    with pytest.raises(UserError, match="resnet18.a1_in1k are not in the local Hugging Face cache") as info:
        expand(pretrained_grid, registry)  # caught at grid validation, before any cell runs
    assert "\n" not in str(info.value)
    assert "HF_HUB_OFFLINE" not in os.environ and hub.HF_HUB_OFFLINE is False  # set only while loading
    torch.manual_seed(3)
    imagenet_like = timm.create_model("resnet18")
    _fake_hub_cache(tmp_path, "timm/resnet18.a1_in1k", imagenet_like.state_dict())
    assert expand(pretrained_grid, registry)
    net = TimmFeatures((1, 28, 28), "resnet18", pretrained=True)
    assert net.weights_info == "timm:resnet18.a1_in1k"
    assert torch.equal(net.net.layer3[0].conv1.weight, imagenet_like.layer3[0].conv1.weight)
    torch.testing.assert_close(net.net.conv1.weight, imagenet_like.conv1.weight.sum(1, keepdim=True))


@pytest.mark.slow
def test_timm_cell_runs_end_to_end(tmp_path):
    out = tmp_path / "out"
    proc = run_cli("run", "--backbone", "timm-resnet18", "--source", "digits:mnist", "--target", "digits:uci",
                   "--strategy", "finetune", "--loss", "none", "--shots", "2", "--results-dir", out, *FAST_TRAIN,
                   "--set", "train.source_epochs=0.1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (result,) = read_results(out)
    assert result["status"] == "ok" and result["backbone"] == "timm-resnet18"
    assert result["backbone_weights"] == "random"
    assert result["provenance"]["backbones"]["plugin"] == "timm_backbones"
    assert result["onnx_top1_agreement"] == 1.0 and result["onnx_max_abs_diff"] < 1e-3


def test_downloads_allowed_but_hub_unreachable_is_one_quick_line(registry, tmp_path, monkeypatch):
    """HF_HUB_OFFLINE=0 with the hub unreachable: refused at grid validation in seconds, in one
    line naming the hub, instead of huggingface_hub's minute of printed retries."""
    import socket
    import time

    import huggingface_hub.constants as hub

    from tlbench.utils import network

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # a port nothing listens on: connections are refused
    port = closed.getsockname()[1]
    closed.close()
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(hub, "ENDPOINT", f"http://127.0.0.1:{port}")
    network.unreachable_reason.cache_clear()
    start = time.perf_counter()
    with pytest.raises(UserError, match=f"hub at http://127.0.0.1:{port} is unreachable: cannot connect") as info:
        expand({**GRID, "set": {"timm-resnet18": {"pretrained": True}}}, registry)
    assert time.perf_counter() - start < 30 and "\n" not in str(info.value)
