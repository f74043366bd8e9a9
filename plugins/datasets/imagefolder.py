"""`imagefolder`: domain-adaptation benchmarks laid out as folders (Office-31, Office-Home, DomainNet).

Layout: ``DATA_ROOT/<domain>/<class>/<image>``. Domains are the sub-folders of ``data_root``
(found when the grid is validated), classes the sorted union of class folder names. Domains with
the same class folders share one label space (domain adaptation); domains whose class folders
differ are a task-transfer pair (each keeps its own classes; target labels needed). Each domain gets a fixed, seeded, per-class train/test split.
Images are decoded by tlbench's one decoder (``decode_image``: libjpeg-turbo for JPEGs, Pillow for
the rest), converted to RGB, resized to ``size`` and normalised with the ImageNet mean/std (what pretrained backbones expect). By default
a split is lazy (``lazy = true``): the core decodes each image once into its decode cache and reads
batches from there, so memory does not grow with the dataset; ``lazy = false`` decodes every image
into memory when the domain loads (same pixels, same batches).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tlbench import hookimpl
from tlbench.plugin.contracts import IMAGE, Dataset, DomainData, Preprocessing
from tlbench.plugin.errors import UserError
from tlbench.plugin.sources import image_files_split

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
SPLIT_SEED = 20261124


def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _check_image(path: Path) -> None:
    """UserError unless Pillow can read ``path`` as an image."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.verify()
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for a non-image
        raise UserError(f"cannot read image {str(path)!r} ({type(exc).__name__}); imagefolder needs real image files") from None


class ImageFolderDomains(Dataset):
    """Domains and classes discovered from the folder tree under ``data_root``."""

    def __init__(self, data_root: str = "", size: int = 64, test_fraction: float = 0.2, limit_per_class: int = 0,
                 lazy: bool = True):
        hint = "one folder per domain, one sub-folder per class, e.g. DIR/amazon/back_pack/*.jpg (Office-31)"
        if not data_root:
            raise UserError(f"imagefolder needs --data-root DIR ({hint}); download Office-31/Office-Home/DomainNet there")
        root = Path(data_root).expanduser()
        if not root.is_dir():
            raise UserError(f"imagefolder data_root {str(root)!r} is not a folder; expected {hint}")
        domains = [d for d in _subdirs(root) if _subdirs(d)]
        if not domains:
            raise UserError(f"imagefolder found no domain folders with class sub-folders under {str(root)!r}; expected {hint}")
        if not 8 <= size <= 512:
            raise UserError(f"imagefolder size {size} is out of range; use 8..512")
        if not 0.0 < test_fraction < 1.0:
            raise UserError(f"imagefolder test_fraction {test_fraction} must be between 0 and 1")
        for domain in domains:  # one unreadable "image" per domain is found now, not mid-training
            first = next((f for c in _subdirs(domain) for f in _images(c)), None)
            if first is None:
                raise UserError(f"imagefolder domain {domain.name!r} has no image files ({', '.join(IMAGE_SUFFIXES)}) in its class folders")
            _check_image(first)
        self.root, self.size, self.test_fraction, self.limit, self.lazy = root, size, test_fraction, limit_per_class, lazy
        self.domains = tuple(d.name for d in domains)
        self.classes = tuple(sorted({c.name for d in domains for c in _subdirs(d)}))
        self.preprocessing = Preprocessing(IMAGE, (3, size, size), IMAGENET_MEAN, IMAGENET_STD)

    def domain_classes(self, domain: str) -> tuple[str, ...] | None:
        """The class folders ``domain`` has (None when it has every class): domains with different
        class folders are a task-transfer pair, refused without target labels."""
        if domain not in self.domains:
            return None
        own = tuple(c for c in self.classes if (self.root / domain / c).is_dir() and _images(self.root / domain / c))
        return None if own == self.classes else own

    def load(self, domain: str) -> DomainData:
        if domain not in self.domains:
            raise UserError(f"imagefolder has no domain {domain!r} under {str(self.root)!r}; found: {', '.join(self.domains)}")
        rng = np.random.default_rng([SPLIT_SEED, self.domains.index(domain)])
        train_paths, test_paths = [], []
        for label, name in enumerate(self.classes):
            folder = self.root / domain / name
            files = _images(folder) if folder.is_dir() else []
            files = [files[i] for i in rng.permutation(len(files))]
            if self.limit > 0:
                files = files[: self.limit]
            n_test = int(round(len(files) * self.test_fraction)) if len(files) > 1 else 0
            test_paths += [(f, label) for f in files[:n_test]]
            train_paths += [(f, label) for f in files[n_test:]]
        if not train_paths or not test_paths:
            raise UserError(f"imagefolder domain {domain!r} has too few images for a train/test split")

        return DomainData(image_files_split(train_paths, self.preprocessing, self.lazy),
                          image_files_split(test_paths, self.preprocessing, self.lazy))


@hookimpl
def register_datasets(register):
    register(
        "imagefolder",
        ImageFolderDomains,
        domains=None,  # discovered from data_root when the grid is validated
        modality=IMAGE,
        defaults={"data_root": "", "size": 64, "test_fraction": 0.2, "limit_per_class": 0, "lazy": True},
        option_ranges={"size": (8, 512), "test_fraction": (1e-6, 1 - 1e-6), "limit_per_class": (0, None)},  # limit 0: every image
        description="DATA_ROOT/<domain>/<class>/<image> folders (Office-31, Office-Home, DomainNet)",
    )
