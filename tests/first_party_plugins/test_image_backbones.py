"""Image backbones: torchvision CNNs at small inputs, weights options, EfficientNet-Lite0's real
ImageNet weights (shipped in a pip package) proven by predictions and by a linear probe."""

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from tlbench.plugin.errors import UserError
from tlbench.grid import expand
from tlbench.deploy.onnx_export import export_onnx
from tlbench_plugins.backbones.efficientnet_lite import LITE_MEAN, LITE_STD, efficientnet_lite0
from tlbench_plugins.backbones.torchvision_cnns import ARCHS, TorchvisionFeatures

TORCHVISION_CNNS = ("resnet18", "resnet50", "vgg11_bn", "mobilenet_v3_small", "efficientnet_b0")


@pytest.mark.parametrize("arch", TORCHVISION_CNNS)
def test_torchvision_cnn_small_input_features(registry, arch):
    entry = registry.get("backbones", arch)
    torch.manual_seed(0)
    net = entry.obj((1, 16, 16)).eval()  # grey 16x16: stems and VGG pools must adapt
    with torch.no_grad():
        out = net(torch.randn(3, 1, 16, 16))
    assert out.shape == (3, ARCHS[arch][1]) == (3, net.out_features)
    assert torch.isfinite(out).all()
    assert net.weights_info == "random"


@pytest.mark.parametrize("arch", ["mobilenet_v3_small", "vgg11_bn"])
def test_torchvision_cnn_onnx_parity_at_other_batch(tmp_path, arch):
    torch.manual_seed(0)
    net = TorchvisionFeatures((3, 32, 32), arch, small_input_stem=True).eval()
    path = tmp_path / "m.onnx"
    export_onnx(net, torch.randn(2, 3, 32, 32), path, {}, dynamo=False)
    x = torch.randn(5, 3, 32, 32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        want = net(x).numpy()
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-3)


def test_local_weights_file_loads_and_is_recorded(tmp_path):
    torch.manual_seed(1)
    reference = TorchvisionFeatures((3, 32, 32), "resnet18")
    full = {f"{k}": v for k, v in reference.net.state_dict().items()}
    full["fc.weight"], full["fc.bias"] = torch.zeros(1000, 512), torch.zeros(1000)
    path = tmp_path / "r18.pth"
    torch.save(full, path)
    net = TorchvisionFeatures((3, 32, 32), "resnet18", weights=str(path))
    assert net.weights_info == f"file:{path}"
    assert torch.equal(net.net.conv1.weight, reference.net.conv1.weight)
    grey = TorchvisionFeatures((1, 32, 32), "resnet18", weights=str(path))  # RGB filters folded to grey
    torch.testing.assert_close(grey.net.conv1.weight, reference.net.conv1.weight.sum(1, keepdim=True))


def test_weights_errors_are_one_line(registry, tmp_path, monkeypatch):
    base = {"backbone": ["resnet18"], "source": ["digits:mnist"], "target": ["digits:uci"], "strategy": ["finetune"],
            "loss": ["none"], "shots": [1], "seeds": [0]}
    with pytest.raises(UserError, match="does not exist") as info:
        expand({**base, "set": {"resnet18": {"weights": str(tmp_path / "missing.pth")}}}, registry)
    assert "\n" not in str(info.value)
    with pytest.raises(UserError, match="no torchvision weights 'IMAGENET9'.*DEFAULT"):
        expand({**base, "set": {"resnet18": {"weights": "IMAGENET9"}}}, registry)
    with pytest.raises(UserError, match="efficientnet_lite0 weights file"):
        expand({**base, "backbone": ["efficientnet_lite0"], "set": {"efficientnet_lite0": {"weights": "nope/w.pth"}}}, registry)

    from torchvision.models._api import WeightsEnum

    def offline(self, *args, **kwargs):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(WeightsEnum, "get_state_dict", offline)
    with pytest.raises(UserError, match="cannot get torchvision weights mobilenet_v3_small IMAGENET1K_V1") as info:
        TorchvisionFeatures((3, 32, 32), "mobilenet_v3_small", weights="DEFAULT")
    assert "\n" not in str(info.value) and "local .pth" in str(info.value)


def _sample_photo(index: int) -> torch.Tensor:
    from sklearn.datasets import load_sample_images
    import torchvision.transforms.v2.functional as TF

    image = torch.tensor(load_sample_images().images[index]).permute(2, 0, 1).float() / 255.0
    return TF.center_crop(TF.resize(image, 256, antialias=True), 224)


def test_efficientnet_lite0_imagenet_weights_name_sample_photos():
    from torchvision.models import EfficientNet_B0_Weights

    categories = EfficientNet_B0_Weights.IMAGENET1K_V1.meta["categories"]  # the ImageNet-1k class names
    net = efficientnet_lite0((3, 224, 224), pretrained=True).eval()
    assert net.weights_info.startswith("imagenet:")
    photos = torch.stack([_sample_photo(0), _sample_photo(1)])  # china.jpg, flower.jpg
    with torch.no_grad():
        top5 = net.imagenet_logits((photos - LITE_MEAN) / LITE_STD).topk(5).indices
    china = {categories[i] for i in top5[0].tolist()}
    flower = {categories[i] for i in top5[1].tolist()}
    assert china & {"palace", "bell cote", "monastery", "church", "dome", "castle"}, china
    assert "daisy" in flower, flower


def _photo_patches(per_photo: int = 80):
    """Grey, contrast-normalised 32x32 patches of three real photos (scikit-learn's china.jpg and
    flower.jpg, matplotlib's grace_hopper.jpg), labelled by photo: colour and brightness are
    removed, so only texture and content tell them apart."""
    import matplotlib.cbook as cbook
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = list(load_sample_images().images)
    with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as image:
        photos.append(np.asarray(image.convert("RGB")))
    rng = np.random.default_rng(0)
    xs, ys = [], []
    for label, photo in enumerate(photos):
        height, width, _ = photo.shape
        for _ in range(per_photo):
            side = int(rng.integers(64, 160))
            top, left = int(rng.integers(0, height - side)), int(rng.integers(0, width - side))
            patch = torch.tensor(photo[top:top + side, left:left + side]).permute(2, 0, 1).float().mean(0, keepdim=True)
            patch = F.interpolate(patch[None], size=(32, 32), mode="bilinear", antialias=True)[0]
            xs.append(((patch - patch.mean()) / (patch.std() + 1e-3)).expand(3, -1, -1))
            ys.append(label)
    order = rng.permutation(len(ys))
    return torch.stack(xs)[order], np.asarray(ys)[order]


def test_efficientnet_lite0_pretrained_features_beat_random_in_a_linear_probe():
    """The same standardised logistic-regression probe on ImageNet features vs on the randomly
    initialised network's features (chance is 1/3)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = _photo_patches()
    half = len(y) // 2
    scores = {}
    for pretrained in (True, False):
        torch.manual_seed(0)
        net = efficientnet_lite0((3, 32, 32), pretrained=pretrained).eval()
        with torch.no_grad():
            features = net(x).numpy()
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        scores[pretrained] = probe.fit(features[:half], y[:half]).score(features[half:], y[half:])
    assert scores[True] > 0.7, scores  # measured 0.83
    assert scores[True] > scores[False] + 0.2, scores  # measured 0.83 vs 0.45


def test_efficientnet_lite0_same_padding_and_onnx_parity(tmp_path):
    net = efficientnet_lite0((3, 40, 40), pretrained=True).eval()  # 40 px: odd sizes inside
    path = tmp_path / "lite.onnx"
    export_onnx(net, torch.randn(2, 3, 40, 40), path, {}, dynamo=False)
    x = torch.randn(3, 3, 40, 40)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, net(x).numpy(), atol=1e-4, rtol=1e-3)
