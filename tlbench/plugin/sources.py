"""Lazy split inputs: what a dataset plugin may put in ``Split.x`` instead of a float tensor.

A benchmark domain of thousands of 224-pixel images does not fit in memory as float32 (0.6 MB an
image at 224 px). A plugin then describes its inputs and the core reads them batch by batch:

- :class:`ImageFiles`: image files, one per example. The core decodes each once into the decode
  cache (a uint8 array on disk, shared by every cell and later runs; ``train.decode_cache_dir``)
  at the dataset's ``Preprocessing.input_shape``.
- :class:`PixelArray`: raw pixels the plugin already holds, typically a ``numpy.memmap`` of uint8
  ``(n, channels, height, width)`` at the dataset's input shape.

Either way each batch is normalised with the dataset's ``Preprocessing`` (``scale``, ``mean``,
``std``) when it is read, exactly as an in-memory plugin would have normalised it. Plain tensors
remain the contract for small data and keep today's behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tlbench.plugin.errors import UserError


@dataclass(frozen=True)
class ImageFiles:
    """The inputs of a split as image files (any format Pillow reads), in the order of the
    split's labels."""

    paths: tuple[str, ...]

    def __post_init__(self):
        object.__setattr__(self, "paths", tuple(str(Path(p)) for p in self.paths))

    def __len__(self) -> int:
        return len(self.paths)


@dataclass(frozen=True, eq=False)
class PixelArray:
    """The inputs of a split as raw pixels: ``array`` is uint8 ``(n, channels, height, width)``
    (a ``numpy.memmap`` stays on disk; rows are read when a batch needs them)."""

    array: Any

    def __post_init__(self):
        shape = getattr(self.array, "shape", None)
        dtype = getattr(self.array, "dtype", None)
        if shape is None or len(shape) != 4 or dtype is None or np.dtype(dtype) != np.uint8:
            raise ValueError(f"PixelArray needs a uint8 (n, channels, height, width) array, got "
                             f"{dtype if dtype is not None else type(self.array).__name__} of shape {shape}")

    def __len__(self) -> int:
        return int(self.array.shape[0])


LAZY_INPUTS = (ImageFiles, PixelArray)


def is_lazy(x) -> bool:
    """Whether ``x`` is a lazy input declaration rather than a tensor."""
    return isinstance(x, LAZY_INPUTS)


def _gain_offset(preprocessing, channels: int):
    """(scale / std, mean / std) per channel as float32 ``(1, channels, 1, 1)`` tensors."""
    import torch

    mean = torch.tensor(preprocessing.mean, dtype=torch.float64)
    std = torch.tensor(preprocessing.std, dtype=torch.float64)
    if len(mean) == 1 and channels != 1:
        mean, std = mean.expand(channels), std.expand(channels)
    gain = (preprocessing.scale / std).to(torch.float32, copy=True).view(1, -1, 1, 1)
    return gain, (mean / std).to(torch.float32, copy=True).view(1, -1, 1, 1)


def normalise_pixels(pixels, preprocessing):
    """uint8 image rows ``(n, channels, height, width)`` (a tensor) as model inputs: scaled by
    ``preprocessing.scale``, then ``(x - mean) / std`` per channel. The one formula both the
    streaming path and an in-memory plugin use, so the two give identical batches."""
    import torch

    x = pixels.to(torch.float32)
    gain, offset = _gain_offset(preprocessing, x.shape[1])
    return x.mul_(gain.to(x.device)).sub_(offset.to(x.device))  # one multiply, one subtract, in place


def pixel_normaliser(preprocessing, channels: int):
    """``into(image, out)``: :func:`normalise_pixels`' formula for one uint8 ``(channels, h, w)``
    image written into a float32 ``out`` of the same shape (same operations, same values), so a
    batch can be filled image by image where each image is made (tlbench.training.presets)."""
    gain, offset = (t[0] for t in _gain_offset(preprocessing, channels))

    def into(image, out) -> None:
        out.copy_(image).mul_(gain).sub_(offset)

    return into


def decode_image(path: str, height: int, width: int, channels: int = 3) -> np.ndarray:
    """The one decoder of the data path: ``path`` as uint8 ``(channels, height, width)`` (RGB for 3
    channels, luminance for 1), resized with antialiased bilinear interpolation. JPEGs go through
    ``torchvision.io.decode_jpeg`` (libjpeg-turbo; measured 1.2x Pillow's decode + resize on
    300x300 files, benchmarks/data_pipeline.py), anything else (or a JPEG it refuses) through
    Pillow. The decoded pixels stay in the decoder's interleaved layout for the resize (torch's
    fastest uint8 kernel; 1.2x a planar copy), which gives the same values. An unreadable file
    is a one-line UserError naming it."""
    import torch

    pixels = _decode_jpeg(path, channels) if str(path).lower().endswith((".jpg", ".jpeg")) else None
    if pixels is None:
        from PIL import Image

        try:
            with Image.open(path) as image:
                image = image.convert("RGB" if channels == 3 else "L")
                array = np.asarray(image, dtype=np.uint8)
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read image {str(path)!r} ({type(exc).__name__}: {exc})") from None
        pixels = torch.from_numpy(array.reshape(array.shape[0], array.shape[1], -1)).permute(2, 0, 1)
    return _resized(pixels, height, width)


def _decode_jpeg(path: str, channels: int):
    """uint8 (C, H, W) tensor from libjpeg-turbo, or None when torchvision refuses the file."""
    import warnings

    with warnings.catch_warnings():  # torchvision 0.29 warns on every call that its image codecs
        warnings.simplefilter("ignore", DeprecationWarning)  # move to torchcodec; the pinned one has them
        from torchvision.io import ImageReadMode, decode_jpeg, read_file

        try:
            mode = ImageReadMode.RGB if channels == 3 else ImageReadMode.GRAY
            return decode_jpeg(read_file(str(path)), mode=mode)
        except (RuntimeError, ValueError, OSError):
            return None


def _resized(pixels, height: int, width: int) -> np.ndarray:
    """A uint8 (C, H, W) tensor resized to ``height`` x ``width``, as a contiguous array."""
    if tuple(pixels.shape[1:]) != (height, width):
        from torchvision.transforms.v2.functional import resize_image

        pixels = resize_image(pixels, [height, width], antialias=True)
    return np.ascontiguousarray(pixels.numpy())


def image_files_split(items, preprocessing, lazy: bool = True):
    """``[(path, label), ...]`` as a :class:`~tlbench.plugin.contracts.Split`: lazy
    :class:`ImageFiles` (decoded once into the core's decode cache), or every image decoded now at
    ``preprocessing.input_shape`` and normalised (the same pixels either way)."""
    import torch

    from tlbench.plugin.contracts import Split

    labels = torch.tensor([label for _, label in items], dtype=torch.long)
    if lazy:
        return Split(ImageFiles([str(path) for path, _ in items]), labels)
    channels, height, width = preprocessing.input_shape
    pixels = np.stack([decode_image(str(path), height, width, channels) for path, _ in items])
    return Split(normalise_pixels(torch.from_numpy(pixels), preprocessing), labels)
