"""Image datasets: synthdigits (deterministic, cached), the standard sets read from tiny fake
copies of their on-disk layouts, imagefolder domains found at validation, one-line errors."""

import bz2
import pickle
import struct

import numpy as np
import pytest
import torch

from conftest import FAST_TRAIN, read_results, run_cli, TOY_PLUGINS  # noqa: F401
from tlbench.plugin.errors import UserError
from tlbench.grid import expand
from tlbench_plugins.datasets.synthdigits import SynthDigits
from tlbench_plugins.datasets.torchvision_sets import DiskImageSet

BASE = {"backbone": ["smallcnn"], "strategy": ["finetune"], "loss": ["none"], "shots": [1], "seeds": [0]}


# -- synthdigits ---------------------------------------------------------------------------------
def test_synthdigits_is_deterministic_cached_and_domains_differ(tmp_path, monkeypatch):
    monkeypatch.setenv("TLBENCH_CACHE", str(tmp_path))
    small = dict(train_per_class=4, test_per_class=2, size=20)
    a = SynthDigits(seed=3, **small)
    clean = a.load("clean")
    assert clean.train.x.shape == (40, 3, 20, 20) and clean.test.x.shape == (20, 3, 20, 20)
    assert torch.bincount(clean.train.y).tolist() == [4] * 10
    cached = list((tmp_path / "synthdigits").glob("clean-*.pt"))
    assert len(cached) == 1 and not list((tmp_path / "synthdigits").glob("*.tmp"))
    fresh = SynthDigits(seed=3, cache=False, **small).load("clean")
    assert torch.equal(fresh.train.x, clean.train.x) and torch.equal(fresh.train.y, clean.train.y)
    assert not torch.equal(SynthDigits(seed=4, cache=False, **small).load("clean").train.x, clean.train.x)
    color = a.load("color").train.x
    assert (color.std(dim=(2, 3)).mean(0) > 0.3).all()  # textured colour backgrounds, every channel
    channel_gap = (color[:, 0] - color[:, 1]).abs().mean()
    assert channel_gap > 0.1 and (clean.train.x[:, 0] == clean.train.x[:, 1]).all()
    noisy, rotated = a.load("noisy").train.x, a.load("rotated").train.x
    assert not torch.equal(noisy, clean.train.x) and not torch.equal(rotated, clean.train.x)


def test_synthdigits_labels_match_the_drawn_digits_and_inputs_are_normalised():
    """A nearest-class-mean classifier on raw pixels must read clean digits far above chance
    (a label/image mix-up drops it to ~10%), and every domain's normalised inputs must span
    [-1, 1] with real contrast (not blank or saturated)."""
    data = SynthDigits(seed=0, size=24, train_per_class=20, test_per_class=10, cache=False)
    for domain in ("clean", "color", "noisy", "rotated"):
        x = data.load(domain).train.x
        assert torch.isfinite(x).all() and x.min() >= -1.0 and x.max() <= 1.0
        assert x.std() > 0.3 and x.flatten(1).std(1).min() > 0.05, domain
    clean = data.load("clean")
    means = torch.stack([clean.train.x[clean.train.y == c].mean(0).flatten() for c in range(10)])
    predicted = torch.cdist(clean.test.x.flatten(1), means).argmin(1)
    assert (predicted == clean.test.y).float().mean() > 0.35
    shuffled = torch.roll(clean.test.y, 1)  # the same check with labels detached from images
    assert (predicted == shuffled).float().mean() < 0.25


# -- fake copies of the torchvision on-disk layouts ------------------------------------------------
def _idx(path, array, magic):
    with open(path, "wb") as handle:
        handle.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape) + array.tobytes())


def fake_mnist(root, n=20):
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix in ("train", "t10k"):
        _idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), 0x803)
        _idx(raw / f"{prefix}-labels-idx1-ubyte", (np.arange(n) % 10).astype(np.uint8), 0x801)


def fake_usps(root, n=20):
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for name in ("usps.bz2", "usps.t.bz2"):
        lines = [f"{i % 10 + 1} " + " ".join(f"{j + 1}:{v:.4f}" for j, v in enumerate(rng.uniform(-1, 1, 256)))
                 for i in range(n)]
        with bz2.open(root / name, "wb") as handle:
            handle.write(("\n".join(lines) + "\n").encode())


def fake_svhn(root, n=20):
    from scipy.io import savemat

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2)
    for split in ("train", "test"):
        labels = (np.arange(n) % 10).reshape(-1, 1)
        labels[labels == 0] = 10  # SVHN's zero
        savemat(root / f"{split}_32x32.mat", {"X": rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8), "y": labels})


def fake_cifar10(root, n=20):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(3)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as handle:
            pickle.dump({"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "labels": list(np.arange(n) % 10)}, handle)


def fake_stl10(root, n=20):
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(4)
    for split in ("train", "test"):
        rng.integers(0, 256, (n, 3, 96, 96), dtype=np.uint8).tofile(folder / f"{split}_X.bin")
        (np.arange(n) % 10 + 1).astype(np.uint8).tofile(folder / f"{split}_y.bin")


@pytest.mark.parametrize(
    "name, make, channels, n_classes, kept",
    [
        ("mnist", fake_mnist, 1, 10, 20),
        ("usps", fake_usps, 1, 10, 20),
        ("svhn", fake_svhn, 3, 10, 20),
        ("cifar10", fake_cifar10, 3, 9, 18),  # frog dropped: 2 of 20
        ("stl10", fake_stl10, 3, 9, 18),  # monkey dropped
    ],
)
def test_disk_sets_read_their_standard_layout(tmp_path, name, make, channels, n_classes, kept):
    make(tmp_path)
    data = DiskImageSet(name, data_root=str(tmp_path), size=24).load(name)
    assert data.test.x.shape == (kept, channels, 24, 24)
    assert len(data.train) == kept * (5 if name == "cifar10" else 1)
    assert data.train.y.max() < n_classes and len(torch.unique(data.test.y)) == n_classes
    assert torch.isfinite(data.train.x).all()


def test_svhn_zero_and_stl_relabelling(tmp_path):
    fake_svhn(tmp_path / "svhn")
    assert 0 in DiskImageSet("svhn", data_root=str(tmp_path / "svhn")).load("svhn").test.y.tolist()
    fake_stl10(tmp_path / "stl")
    y = DiskImageSet("stl10", data_root=str(tmp_path / "stl")).load("stl10").test.y.tolist()
    # STL order airplane, bird, car, cat, deer, dog, horse, monkey, ship, truck -> 9 shared classes
    assert y[:9] == [0, 2, 1, 3, 4, 5, 6, 7, 8]


def test_missing_data_root_is_one_line_before_training(registry, tmp_path):
    config = {**BASE, "source": ["mnist:mnist"], "target": ["usps:usps"]}
    with pytest.raises(UserError, match="--data-root") as info:
        expand(config, registry)
    assert "\n" not in str(info.value)
    with pytest.raises(UserError, match="expected .*MNIST/raw/train-images-idx3-ubyte.*--download"):
        expand({**config, "data_root": str(tmp_path)}, registry)


def test_label_spaces_pair_digit_sets_and_keep_cifar_apart(registry, tmp_path):
    fake_mnist(tmp_path)
    fake_usps(tmp_path)
    specs = expand({**BASE, "source": ["mnist:mnist"], "target": ["usps:usps", "synthdigits:clean"],
                    "data_root": str(tmp_path), "set": {"mnist": {"limit_per_class": 1}}}, registry)
    assert len(specs) == 2
    assert specs[0].dataset_options["mnist"] == {"data_root": str(tmp_path), "download": False, "size": 32, "limit_per_class": 1}
    fake_cifar10(tmp_path)
    apart = {**BASE, "source": ["cifar10:cifar10"], "target": ["mnist:mnist"], "data_root": str(tmp_path)}
    assert {s.kind for s in expand(apart, registry)} == {"task-transfer"}  # no shared labels: a task pair
    with pytest.raises(UserError, match="task-transfer pair .*use --shots 1 or more"):
        expand({**apart, "shots": [0]}, registry)
    with pytest.raises(UserError, match="dataset 'synthdigits' has no option 'sise'; known: size"):
        expand({**BASE, "source": ["synthdigits:clean"], "target": ["synthdigits:color"], "set": {"synthdigits": {"sise": 8}}}, registry)


def test_dataset_options_change_the_run_id(registry):
    config = {**BASE, "source": ["synthdigits:clean"], "target": ["synthdigits:noisy"]}
    a = expand(config, registry)[0]
    b = expand({**config, "set": {"synthdigits": {"seed": 1}}}, registry)[0]
    assert a.run_id != b.run_id and b.dataset_options["synthdigits"]["seed"] == 1
    digits = expand({**BASE, "source": ["digits:mnist"], "target": ["digits:uci"]}, registry)[0]
    assert digits.dataset_options == {}  # datasets without options keep their old run ids


# -- imagefolder -----------------------------------------------------------------------------------
def fake_office(root, domains=("amazon", "webcam"), classes=("back_pack", "bike", "mug"), per_class=3):
    from PIL import Image

    rng = np.random.default_rng(5)
    for domain in domains:
        for name in classes:
            folder = root / domain / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                size = (int(rng.integers(20, 40)), int(rng.integers(20, 40)))
                Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(folder / f"{i}.png")


def test_imagefolder_discovers_domains_and_classes(registry, tmp_path):
    fake_office(tmp_path)
    config = {**BASE, "source": ["imagefolder:amazon"], "target": ["imagefolder:webcam"], "data_root": str(tmp_path)}
    assert len(expand(config, registry)) == 1
    with pytest.raises(UserError, match="unknown domain 'dslr' of dataset 'imagefolder'; known: .*amazon"):
        expand({**config, "target": ["imagefolder:dslr"]}, registry)
    with pytest.raises(UserError, match="not a folder; expected one folder per domain"):
        expand({**config, "data_root": str(tmp_path / "nope")}, registry)
    dataset = registry.get("datasets", "imagefolder").obj(data_root=str(tmp_path), size=16)
    assert dataset.domains == ("amazon", "webcam") and dataset.classes == ("back_pack", "bike", "mug")
    data = dataset.load("webcam")  # lazy by default: the files, decoded by the core when a cell reads them
    assert len(data.train.x) == 6 and len(data.test.x) == 3 and all(p.endswith(".png") for p in data.train.x.paths)
    eager = registry.get("datasets", "imagefolder").obj(data_root=str(tmp_path), size=16, lazy=False).load("webcam")
    assert eager.train.x.shape == (6, 3, 16, 16) and eager.test.x.shape == (3, 3, 16, 16)


def test_cli_runs_on_imagefolder_and_records_options_and_weights(tmp_path):
    fake_office(tmp_path / "office", per_class=4)
    out = tmp_path / "runs"
    proc = run_cli("run", "--backbone", "smallcnn", "--source", "imagefolder:amazon", "--target", "imagefolder:webcam",
                   "--data-root", tmp_path / "office", "--set", "imagefolder.size=16", "--set", "train.int8=false",
                   "--results-dir", out, *FAST_TRAIN)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    (result,) = read_results(out)
    assert result["status"] == "ok" and result["onnx_max_abs_diff"] < 1e-3
    assert result["dataset_options"]["imagefolder"]["size"] == 16
    assert result["input_shape"] == [3, 16, 16]
    missing = run_cli("run", "--backbone", "smallcnn", "--source", "mnist:mnist", "--target", "usps:usps",
                      "--data-root", tmp_path / "empty", "--results-dir", out)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "--download" in missing.stderr
