"""`synthdigits`: procedurally rendered digits 0-9 in four domains with controlled shift.

Glyphs come from the TrueType fonts bundled with matplotlib (DejaVu, STIX, Computer Modern),
rendered once with Pillow, then every example gets its own random affine (rotation, scale,
shear, translation) and stroke weight. The domains differ only in what happens next:

- ``clean``: white digit on black.
- ``color``: MNIST-M-like: the digit inverts a coloured, textured background (|background - digit|).
- ``noisy``: low contrast, blur, Gaussian and salt-and-pepper noise.
- ``rotated``: like ``clean`` but turned 35-65 degrees either way.

Everything is a pure function of the options (``seed`` included), so the same options give the
same images on every machine; they are cached on disk (``$TLBENCH_CACHE`` or
``~/.cache/tlbench``) as uint8, written atomically.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tlbench import hookimpl
from tlbench.plugin.augment import image_view
from tlbench.plugin.contracts import IMAGE, Dataset, DomainData, Preprocessing, Split
from tlbench.plugin.errors import UserError

DOMAINS = ("clean", "color", "noisy", "rotated")
CLASSES = tuple(str(d) for d in range(10))
FONTS = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf",
    "STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "cmr10.ttf", "cmss10.ttf", "cmtt10.ttf",
)
GLYPH = 64  # glyph canvas side before the per-example affine
FORMAT_VERSION = 2  # 2: antialiased downsampling (no blank thin digits)
MEAN, STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)


def cache_dir() -> Path:
    """Where generated datasets are cached: ``$TLBENCH_CACHE`` or ``~/.cache/tlbench``."""
    return Path(os.environ.get("TLBENCH_CACHE") or Path.home() / ".cache" / "tlbench")


def _check_cache_dir(directory: Path) -> None:
    """UserError when ``directory`` cannot be created: it, or a folder above it, is a regular file."""
    for folder in (directory, *directory.parents):
        try:
            if not (folder.exists() or folder.is_symlink()):
                continue
            if folder.is_dir():
                return
        except OSError:  # e.g. no permission to look: writing reports it, if it fails
            return
        raise UserError(f"synthdigits cache {str(directory)!r}: {str(folder)!r} is not a directory; point "
                        "TLBENCH_CACHE at a directory or --set synthdigits.cache=false")


@lru_cache(maxsize=1)
def glyphs() -> torch.Tensor:
    """(fonts, 10, GLYPH, GLYPH) white-on-black digit glyphs in [0, 1], each centred."""
    import matplotlib
    from PIL import Image, ImageDraw, ImageFont

    font_dir = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    out = []
    for name in FONTS:
        path = font_dir / name
        if not path.is_file():
            continue
        font = ImageFont.truetype(str(path), size=int(GLYPH * 0.7))
        per_font = []
        for digit in CLASSES:
            image = Image.new("L", (GLYPH, GLYPH), 0)
            draw = ImageDraw.Draw(image)
            left, top, right, bottom = draw.textbbox((0, 0), digit, font=font)
            draw.text(((GLYPH - (right - left)) / 2 - left, (GLYPH - (bottom - top)) / 2 - top), digit, fill=255, font=font)
            per_font.append(np.asarray(image, dtype=np.float32) / 255.0)
        out.append(per_font)
    if not out:
        raise UserError(f"synthdigits found none of its fonts under {font_dir}; reinstall matplotlib")
    return torch.tensor(np.array(out))


def _affine(images: torch.Tensor, rng: np.random.Generator, size: int, rotation: tuple[float, float]) -> torch.Tensor:
    """Per-example random affine of (n, 1, G, G) glyphs, resampled to (n, 1, size, size)."""
    n = images.shape[0]
    low, high = rotation
    angle = np.radians(rng.uniform(low, high, n) * rng.choice([-1.0, 1.0], n))
    scale = rng.uniform(0.75, 1.05, n)
    shear = rng.uniform(-0.25, 0.25, n)
    shift = rng.uniform(-0.12, 0.12, (n, 2))
    cos, sin = np.cos(angle), np.sin(angle)
    # Inverse map (output -> input coordinates) as affine_grid expects.
    theta = np.stack([
        np.stack([cos / scale, (-sin + shear * cos) / scale, shift[:, 0]], 1),
        np.stack([sin / scale, (cos + shear * sin) / scale, shift[:, 1]], 1),
    ], 1).astype(np.float32)
    # Warp at glyph resolution at least, then shrink with antialiasing: sampling the glyph
    # straight at a small output size skipped thin strokes and left ~1-2% of digits blank.
    work = max(size, images.shape[-1])
    grid = F.affine_grid(torch.from_numpy(theta), [n, 1, work, work], align_corners=False)
    warped = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if work == size:
        return warped
    return F.interpolate(warped, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def _stroke(images: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Random stroke weight: thicken a third of the glyphs, thin a third (a glyph that thinning
    would strip of more than half its ink, as in the hairline fonts, keeps its stroke)."""
    thick = F.max_pool2d(images, 3, 1, 1)
    thin = -F.max_pool2d(-images, 3, 1, 1)
    keeps_ink = thin.sum(dim=(2, 3), keepdim=True) >= 0.5 * images.sum(dim=(2, 3), keepdim=True)
    thin = torch.where(keeps_ink, thin, images)
    choice = torch.from_numpy(rng.integers(0, 3, images.shape[0])).view(-1, 1, 1, 1)
    return torch.where(choice == 0, thick, torch.where(choice == 1, thin, images))


def _textured_backgrounds(n: int, size: int, rng: np.random.Generator) -> torch.Tensor:
    """(n, 3, size, size) coloured smooth-noise textures with stripes, in [0, 1]."""
    coarse = torch.from_numpy(rng.uniform(0, 1, (n, 3, 4, 4)).astype(np.float32))
    smooth = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    fine = torch.from_numpy(rng.uniform(-0.15, 0.15, (n, 3, size, size)).astype(np.float32))
    y = torch.linspace(0, 1, size).view(1, 1, size, 1)
    x = torch.linspace(0, 1, size).view(1, 1, 1, size)
    freq = torch.from_numpy(rng.uniform(2, 8, (n, 1, 1, 1)).astype(np.float32))
    tilt = torch.from_numpy(rng.uniform(0, math.pi, (n, 1, 1, 1)).astype(np.float32))
    stripes = 0.15 * torch.sin(2 * math.pi * freq * (x * torch.cos(tilt) + y * torch.sin(tilt)))
    return (smooth + fine + stripes).clamp(0, 1)


def render(domain: str, labels: np.ndarray, size: int, rng: np.random.Generator) -> torch.Tensor:
    """Render ``labels`` as (n, 3, size, size) images in [0, 1] for ``domain``."""
    bank = glyphs()
    n = len(labels)
    fonts = rng.integers(0, bank.shape[0], n)
    base = bank[torch.from_numpy(fonts), torch.from_numpy(labels)].unsqueeze(1)
    rotation = (35.0, 65.0) if domain == "rotated" else (0.0, 12.0)
    digit = _affine(_stroke(base, rng), rng, size, rotation).clamp(0, 1)
    digit = digit / digit.amax(dim=(2, 3), keepdim=True).clamp_min(1e-3)  # full-contrast strokes
    if domain in ("clean", "rotated"):
        return digit.expand(-1, 3, -1, -1).contiguous()
    if domain == "color":
        colour = torch.from_numpy(rng.uniform(0.5, 1.0, (n, 3, 1, 1)).astype(np.float32))
        return (_textured_backgrounds(n, size, rng) - digit * colour).abs()
    if domain == "noisy":
        contrast = torch.from_numpy(rng.uniform(0.35, 0.7, (n, 1, 1, 1)).astype(np.float32))
        floor = torch.from_numpy(rng.uniform(0.0, 0.3, (n, 1, 1, 1)).astype(np.float32))
        img = floor + contrast * F.avg_pool2d(digit, 3, 1, 1, count_include_pad=False)
        img = img + torch.from_numpy(rng.normal(0, 0.18, img.shape).astype(np.float32))
        salt = torch.from_numpy(rng.uniform(0, 1, img.shape).astype(np.float32))
        img = torch.where(salt < 0.03, torch.zeros_like(img), torch.where(salt > 0.97, torch.ones_like(img), img))
        return img.clamp(0, 1).expand(-1, 3, -1, -1).contiguous()
    raise UserError(f"unknown synthdigits domain {domain!r}; known: {', '.join(DOMAINS)}")


def _generate(domain: str, seed: int, size: int, train_per_class: int, test_per_class: int) -> dict:
    rng = np.random.default_rng([seed, DOMAINS.index(domain), FORMAT_VERSION])
    out = {}
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        labels = rng.permutation(np.repeat(np.arange(10), per_class))
        images = render(domain, labels, size, rng)
        out[split] = ((images * 255).round().to(torch.uint8), torch.from_numpy(labels))
    return out


def _save_atomic(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class SynthDigits(Dataset):
    """Rendered digits in the ``clean``, ``color``, ``noisy`` and ``rotated`` domains."""

    domains = DOMAINS
    classes = CLASSES

    def __init__(self, seed: int = 0, size: int = 32, train_per_class: int = 200, test_per_class: int = 100, cache: bool = True):
        if not 8 <= size <= 256:
            raise UserError(f"synthdigits size {size} is out of range; use 8..256")
        if train_per_class < 1 or test_per_class < 1:
            raise UserError("synthdigits train_per_class and test_per_class must be >= 1")
        self.options = {"seed": seed, "size": size, "train_per_class": train_per_class, "test_per_class": test_per_class}
        self.cache = cache
        if cache:  # known when the grid is validated, not when the first cell writes the cache
            _check_cache_dir(cache_dir() / "synthdigits")
        self.preprocessing = Preprocessing(IMAGE, (3, size, size), MEAN, STD)

    def cache_path(self, domain: str) -> Path:
        key = json.dumps({**self.options, "domain": domain, "fonts": FONTS, "v": FORMAT_VERSION}, sort_keys=True)
        return cache_dir() / "synthdigits" / f"{domain}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt"

    def raw(self, domain: str) -> dict:
        """{"train"|"test": (uint8 images (n, 3, s, s), labels)}, from the cache or generated."""
        if domain not in DOMAINS:
            raise UserError(f"unknown synthdigits domain {domain!r}; known: {', '.join(DOMAINS)}")
        path = self.cache_path(domain)
        if self.cache and path.is_file():
            try:
                return torch.load(path, weights_only=True)
            except Exception:  # noqa: BLE001 - a corrupt cache file is regenerated
                pass
        data = _generate(domain, **self.options)
        if self.cache:
            _save_atomic(path, data)
        return data

    def load(self, domain: str) -> DomainData:
        data = self.raw(domain)
        mean = torch.tensor(MEAN).view(1, 3, 1, 1)
        std = torch.tensor(STD).view(1, 3, 1, 1)

        def split(name):
            images, labels = data[name]
            return Split((images.float() / 255.0 - mean) / std, labels.long())

        return DomainData(split("train"), split("test"))

    def augment(self, x, generator=None):
        """Mild views only: rotation is one of the domain shifts, so views turn at most 8 degrees."""
        return image_view(x, generator, max_rotation_deg=8.0)


@hookimpl
def register_datasets(register):
    register(
        "synthdigits",
        SynthDigits,
        domains=DOMAINS,
        modality=IMAGE,
        num_classes=10,
        classes=CLASSES,
        label_space="digits-0-9",
        defaults={"seed": 0, "size": 32, "train_per_class": 200, "test_per_class": 100, "cache": True},
        option_ranges={"seed": (0, 2**31 - 1), "size": (8, 256), "train_per_class": (1, 100_000), "test_per_class": (1, 100_000)},
        description="rendered digits (matplotlib fonts): clean, color (MNIST-M-like), noisy, rotated",
    )
