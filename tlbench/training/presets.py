"""Training-time augmentation presets (``train.augment``), named after the recipe they follow.

Each preset is a per-image ``torchvision.transforms.v2`` pipeline applied to training batches
only (source training and transfer: labeled source, labeled target shots and unlabeled target);
evaluation, validators, estimators and ONNX export see the plain resized image. Every image of
a batch gets its own random parameters, drawn from a generator of the cell's seed, so a run is
repeatable. Geometric steps act on the normalised batch (they commute with the per-channel
normalisation); colour steps undo it first, work on [0, 1] pixels, and normalise again.

- ``none``: no augmentation (the default; earlier results).
- ``tllib``: random-resized-crop to the input size (scale 0.08-1, ratio 3/4-4/3) and horizontal
  flip: the training transform of TLlib's image classification recipes (Jiang et al., 2022).
  TLlib evaluates a 224 centre crop of a 256 resize; tlbench evaluates the whole image resized
  to the input size (as DomainBed does), so that crop is not reproduced.
- ``domainbed``: random-resized-crop (scale 0.7-1), horizontal flip, colour jitter 0.3
  (brightness, contrast, saturation, hue), random grayscale p 0.1: DomainBed's training
  transform (Gulrajani & Lopez-Paz, 2021); its test transform is the plain resize, as here.
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2

from tlbench.settings.train import AUGMENT_PRESETS as PRESETS


def _pipeline(preset: str, height: int, width: int) -> tuple[v2.Transform, v2.Transform | None]:
    """(geometric steps on normalised images, colour steps on [0, 1] images or None)."""
    if preset == "tllib":
        return v2.Compose([v2.RandomResizedCrop((height, width), scale=(0.08, 1.0), antialias=True),
                           v2.RandomHorizontalFlip()]), None
    if preset == "domainbed":
        return (v2.Compose([v2.RandomResizedCrop((height, width), scale=(0.7, 1.0), antialias=True),
                            v2.RandomHorizontalFlip()]),
                v2.Compose([v2.ColorJitter(0.3, 0.3, 0.3, 0.3), v2.RandomGrayscale(0.1)]))
    raise ValueError(f"unknown augmentation preset {preset!r}; use one of {', '.join(PRESETS)}")


class TrainingView:
    """``view(batch)``: a random augmented view of a normalised image batch, per image."""

    def __init__(self, preset: str, preprocessing, generator: torch.Generator):
        self.preset, self.generator = preset, generator
        self.mean = torch.tensor(preprocessing.mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(preprocessing.std, dtype=torch.float32).view(-1, 1, 1)
        self._pipelines: dict[tuple, tuple] = {}

    def _each(self, images: torch.Tensor, augment_one) -> torch.Tensor:
        """``augment_one(image, geometric, colour)`` on every image, under one seed drawn from
        the view's generator (so a batch's views do not depend on anything else drawn)."""
        key = tuple(images.shape[1:])
        if key not in self._pipelines:
            self._pipelines[key] = _pipeline(self.preset, key[1], key[2])
        geometric, colour = self._pipelines[key]
        seed = int(torch.randint(0, 2**62, (1,), generator=self.generator))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return torch.stack([augment_one(image, geometric, colour) for image in images])

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        if batch.dim() != 4 or len(batch) == 0:
            return batch
        channels = batch.shape[1]
        mean, std = self.mean.expand(channels, 1, 1), self.std.expand(channels, 1, 1)

        def one(image, geometric, colour):
            image = geometric(image)
            if colour is None:
                return image
            pixels = (image * std + mean).clamp(0.0, 1.0)
            if channels == 1:  # grey data: colour jitter on a 3-channel copy, back to one channel
                pixels = colour(pixels.expand(3, -1, -1)).mean(dim=0, keepdim=True)
            else:
                pixels = colour(pixels)
            return (pixels - mean) / std

        out = self._each(batch.detach().float().cpu(), one)
        return out.to(device=batch.device, dtype=batch.dtype)

    def on_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """The same kind of view on uint8 ``(n, C, H, W)`` pixels, before normalisation (how
        streamed data is augmented: uint8 crops and colour steps cost half the float ones)."""
        if pixels.dim() != 4 or len(pixels) == 0:
            return pixels
        grey = pixels.shape[1] == 1

        def one(image, geometric, colour):
            image = geometric(image)
            if colour is None:
                return image
            return colour(image.expand(3, -1, -1))[:1] if grey else colour(image)

        return self._each(pixels, one)


def training_view(preset: str, preprocessing, generator: torch.Generator):
    """The per-batch augmentation of ``preset`` (None for ``none`` and for non-image data)."""
    if preset == "none" or getattr(preprocessing, "modality", "image") != "image":
        return None
    _pipeline(preset, 8, 8)  # an unknown name fails here
    return TrainingView(preset, preprocessing, generator)
