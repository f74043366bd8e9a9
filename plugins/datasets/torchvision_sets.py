"""Standard benchmarks from disk: `mnist`, `usps`, `svhn`, `cifar10`, `stl10`, `cifar100`.

Each is one dataset with one domain of the same name (``mnist:mnist``); domains pair across
datasets through a shared ``label_space``: the digit sets share ``digits-0-9`` (with
``synthdigits`` and ``digits``), CIFAR-10 and STL-10 share the standard 9 common classes
(CIFAR's frog and STL's monkey dropped); `cifar100` (its 100 fine classes) shares a label space
with none, so `cifar10:cifar10 -> cifar100:cifar100` is task transfer. Files are read from ``data_root`` in the layouts
torchvision writes; ``download = true`` (``--download``) lets torchvision fetch them first.
Images are resized to ``size`` and normalised with each set's usual mean/std.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from tlbench import hookimpl
from tlbench.plugin.contracts import IMAGE, Dataset, DomainData, Preprocessing, Split
from tlbench.plugin.errors import UserError

DIGITS = tuple(str(d) for d in range(10))
CIFAR_STL_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "horse", "ship", "truck")
CIFAR_TO_9 = {0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 7: 6, 8: 7, 9: 8}  # frog (6) dropped
STL_TO_9 = {0: 0, 2: 1, 1: 2, 3: 3, 4: 4, 5: 5, 6: 6, 8: 7, 9: 8}  # monkey (7) dropped


# -- readers: (root, split) -> (uint8 images (n, c, h, w), int64 labels) ------------------------
def _read_mnist(root: Path, split: str):
    from torchvision.datasets.mnist import read_image_file, read_label_file

    prefix = "train" if split == "train" else "t10k"
    raw = root / "MNIST" / "raw"
    images = read_image_file(str(raw / f"{prefix}-images-idx3-ubyte"))
    labels = read_label_file(str(raw / f"{prefix}-labels-idx1-ubyte"))
    return images.unsqueeze(1), labels.long()


def _read_usps(root: Path, split: str):
    import bz2

    with bz2.open(root / ("usps.bz2" if split == "train" else "usps.t.bz2")) as handle:
        rows = [line.decode().split() for line in handle]
    values = np.asarray([[item.split(":")[-1] for item in row[1:]] for row in rows], dtype=np.float32)
    images = ((values.reshape(-1, 1, 16, 16) + 1) / 2 * 255).round().clip(0, 255).astype(np.uint8)
    labels = np.asarray([int(float(row[0])) - 1 for row in rows], dtype=np.int64)
    return torch.from_numpy(images), torch.from_numpy(labels)


def _read_svhn(root: Path, split: str):
    from scipy.io import loadmat

    mat = loadmat(str(root / f"{split}_32x32.mat"))
    images = np.transpose(mat["X"], (3, 2, 0, 1))  # (32, 32, 3, n) -> (n, 3, 32, 32)
    labels = mat["y"].astype(np.int64).reshape(-1) % 10  # SVHN writes digit 0 as 10
    return torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels)


def _read_cifar10(root: Path, split: str):
    folder = root / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    data, labels = [], []
    for name in names:
        with open(folder / name, "rb") as handle:
            entry = pickle.load(handle, encoding="latin1")
        data.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.extend(entry["labels"] if "labels" in entry else entry["fine_labels"])
    return _keep(torch.from_numpy(np.concatenate(data)), np.asarray(labels), CIFAR_TO_9)


def _read_cifar100(root: Path, split: str):
    with open(root / "cifar-100-python" / ("train" if split == "train" else "test"), "rb") as handle:
        entry = pickle.load(handle, encoding="latin1")
    images = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    return torch.from_numpy(images), torch.tensor(entry["fine_labels"], dtype=torch.long)


def cifar100_classes(root: Path) -> tuple[str, ...]:
    """The 100 fine class names from the dataset's own ``meta`` file."""
    with open(root / "cifar-100-python" / "meta", "rb") as handle:
        return tuple(pickle.load(handle, encoding="latin1")["fine_label_names"])


def _read_stl10(root: Path, split: str):
    folder = root / "stl10_binary"
    images = np.fromfile(folder / f"{split}_X.bin", dtype=np.uint8).reshape(-1, 3, 96, 96)
    images = np.ascontiguousarray(np.transpose(images, (0, 1, 3, 2)))  # stored column-major
    labels = np.fromfile(folder / f"{split}_y.bin", dtype=np.uint8).astype(np.int64) - 1
    return _keep(torch.from_numpy(images), labels, STL_TO_9)


def _keep(images: torch.Tensor, labels: np.ndarray, mapping: dict[int, int]):
    """Keep the examples of mapped classes, relabelled."""
    mask = np.isin(labels, list(mapping))
    relabelled = np.asarray([mapping[int(v)] for v in labels[mask]], dtype=np.int64)
    return images[torch.from_numpy(mask)], torch.from_numpy(relabelled)


# -- torchvision download (only when asked) -----------------------------------------------------
def _download(name: str, root: Path) -> None:
    from torchvision import datasets as tvd

    makers = {
        "mnist": lambda s: tvd.MNIST(str(root), train=s == "train", download=True),
        "usps": lambda s: tvd.USPS(str(root), train=s == "train", download=True),
        "svhn": lambda s: tvd.SVHN(str(root), split=s, download=True),
        "cifar10": lambda s: tvd.CIFAR10(str(root), train=s == "train", download=True),
        "stl10": lambda s: tvd.STL10(str(root), split=s, download=True),
        "cifar100": lambda s: tvd.CIFAR100(str(root), train=s == "train", download=True),
    }
    try:
        for split in ("train", "test"):
            makers[name](split)
    except Exception as exc:  # noqa: BLE001 - offline, disk full, bad checksum
        raise UserError(
            f"downloading {name} into {str(root)!r} failed ({type(exc).__name__}: {str(exc)[:120]}); "
            f"download it on a machine with network access and copy it there"
        ) from None


@dataclass(frozen=True)
class SetInfo:
    reader: Callable
    expected: str  # the file that must exist, relative to data_root
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...]
    label_space: str


SETS = {
    "mnist": SetInfo(_read_mnist, "MNIST/raw/train-images-idx3-ubyte", 1, (0.1307,), (0.3081,), DIGITS, "digits-0-9"),
    "usps": SetInfo(_read_usps, "usps.bz2", 1, (0.2469,), (0.2989,), DIGITS, "digits-0-9"),
    "svhn": SetInfo(_read_svhn, "train_32x32.mat", 3, (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970), DIGITS, "digits-0-9"),
    "cifar10": SetInfo(_read_cifar10, "cifar-10-batches-py/data_batch_1", 3, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), CIFAR_STL_CLASSES, "cifar-stl-9"),
    "stl10": SetInfo(_read_stl10, "stl10_binary/train_X.bin", 3, (0.4467, 0.4398, 0.4066), (0.2603, 0.2566, 0.2713), CIFAR_STL_CLASSES, "cifar-stl-9"),
    # classes are read from the files (cifar-100-python/meta) when the dataset is built
    "cifar100": SetInfo(_read_cifar100, "cifar-100-python/train", 3, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), (), "cifar100"),
}


def resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (n, c, h, w) -> float (n, c, size, size) in [0, 1], antialiased when shrinking."""
    x = images.float() / 255.0
    if tuple(x.shape[2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x.clamp(0, 1)


def subsample(labels: torch.Tensor, limit: int, seed: int = 0) -> torch.Tensor:
    """Indices of at most ``limit`` examples per class (0 = all), seeded."""
    if limit <= 0:
        return torch.arange(len(labels))
    generator = torch.Generator().manual_seed(seed)
    keep = []
    for label in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == label).flatten()
        keep.append(idx[torch.randperm(len(idx), generator=generator)[:limit]])
    return torch.cat(keep).sort().values


class DiskImageSet(Dataset):
    """One standard image set read from ``data_root``; its single domain has its own name."""

    def __init__(self, name: str, data_root: str = "", download: bool = False, size: int = 32, limit_per_class: int = 0):
        info = SETS[name]
        self.name, self.info, self.size, self.limit = name, info, size, limit_per_class
        self.domains = (name,)
        self.classes = info.classes
        if not 8 <= size <= 512:
            raise UserError(f"{name} size {size} is out of range; use 8..512")
        if not data_root:
            raise UserError(
                f"{name} reads its files from a folder: pass --data-root DIR (expects DIR/{info.expected}), "
                f"adding --download to fetch them with torchvision"
            )
        self.root = Path(data_root).expanduser()
        if download and not (self.root / info.expected).exists():
            _download(name, self.root)
        if not (self.root / info.expected).exists():
            raise UserError(
                f"{name} data not found: expected {str(self.root / info.expected)!r}; point --data-root at the folder "
                f"holding it, or add --download to fetch it with torchvision"
            )
        self.preprocessing = Preprocessing(IMAGE, (info.channels, size, size), info.mean, info.std)
        if not self.classes:
            self.classes = cifar100_classes(self.root)

    def load(self, domain: str) -> DomainData:
        if domain != self.name:
            raise UserError(f"dataset {self.name!r} has one domain, {self.name!r}; got {domain!r}")
        mean = torch.tensor(self.info.mean).view(1, -1, 1, 1)
        std = torch.tensor(self.info.std).view(1, -1, 1, 1)

        def split(which: str) -> Split:
            try:
                images, labels = self.info.reader(self.root, which)
            except FileNotFoundError as exc:
                raise UserError(f"{self.name} {which} split is incomplete under {str(self.root)!r}: {exc}") from None
            keep = subsample(labels, self.limit)
            return Split((resize_uint8(images[keep], self.size) - mean) / std, labels[keep])

        return DomainData(split("train"), split("test"))


def _factory(name: str):
    def build(**options):
        return DiskImageSet(name, **options)

    build.__name__ = name
    build.__doc__ = f"The {name} dataset read from data_root."
    return build


@hookimpl
def register_datasets(register):
    for name, info in SETS.items():
        register(
            name,
            _factory(name),
            domains=(name,),
            modality=IMAGE,
            num_classes=len(info.classes) or 100,
            **({"classes": info.classes} if info.classes else {}),
            label_space=info.label_space,
            defaults={"data_root": "", "download": False, "size": 32, "limit_per_class": 0},
            option_ranges={"size": (8, 512), "limit_per_class": (0, None)},  # limit 0: every image
            description=f"{name} from --data-root (torchvision layout); label space {info.label_space}",
        )
