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

from concurrent.futures import ThreadPoolExecutor

import torch
from torchvision.transforms import v2

from tlbench.settings.train import AUGMENT_PRESETS as PRESETS

RANDOM_APPLY = (v2.RandomHorizontalFlip, v2.RandomGrayscale)  # applied with probability ``p``
MIN_IMAGES_PER_THREAD = 8  # smaller batches are augmented in the calling thread


def _pipeline(preset: str, height: int, width: int) -> tuple[list[v2.Transform], list[v2.Transform]]:
    """(geometric steps on normalised images, colour steps on [0, 1] images; empty when none)."""
    if preset == "tllib":
        return [v2.RandomResizedCrop((height, width), scale=(0.08, 1.0), antialias=True), v2.RandomHorizontalFlip()], []
    if preset == "domainbed":
        return ([v2.RandomResizedCrop((height, width), scale=(0.7, 1.0), antialias=True), v2.RandomHorizontalFlip()],
                [v2.ColorJitter(0.3, 0.3, 0.3, 0.3), v2.RandomGrayscale(0.1)])
    raise ValueError(f"unknown augmentation preset {preset!r}; use one of {', '.join(PRESETS)}")


def _plan(steps: list[v2.Transform], shape: tuple[int, ...]) -> list[tuple[v2.Transform, dict]]:
    """The random parameters of ``steps`` for one image of ``shape``, drawn from torch's global
    generator exactly as the steps' own ``forward`` draws them (a random-apply step's coin, then
    its ``make_params``), so a planned view equals the pipeline run image by image."""
    planned = []
    for step in steps:
        if isinstance(step, RANDOM_APPLY) and torch.rand(1) >= step.p:
            continue
        planned.append((step, step.make_params([torch.empty(1, dtype=torch.uint8).expand(shape)])))
        if isinstance(step, v2.RandomResizedCrop):
            shape = (shape[0], *step.size)
    return planned


def _apply(image: torch.Tensor, planned: list[tuple[v2.Transform, dict]]) -> torch.Tensor:
    for step, params in planned:
        image = step.transform(image, params)
    return image


class TrainingView:
    """``view(batch)``: a random augmented view of a normalised image batch, per image.

    A batch's random parameters are drawn first, in the calling thread, from one seed taken from
    the view's generator; the images are then transformed by up to ``torch.get_num_threads()``
    threads (the resize kernels release the GIL). Each image's result depends only on its own
    parameters, so the batch is the same whatever the thread count."""

    def __init__(self, preset: str, preprocessing, generator: torch.Generator):
        self.preset, self.generator = preset, generator
        self.mean = torch.tensor(preprocessing.mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(preprocessing.std, dtype=torch.float32).view(-1, 1, 1)
        self._pipelines: dict[tuple, tuple] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._pool_size = 0

    def _each(self, images: torch.Tensor, augment_one, finish=None) -> torch.Tensor:
        """``augment_one(image, geometric_plan, colour_plan)`` on every image, with the plans drawn
        under one seed from the view's generator (so a batch's views depend on nothing else drawn);
        with ``finish(view, out_row)`` each view is written into a float32 batch by ``finish``."""
        key = tuple(images.shape[1:])
        if key not in self._pipelines:
            self._pipelines[key] = _pipeline(self.preset, key[1], key[2])
        geometric, colour = self._pipelines[key]
        seed = int(torch.randint(0, 2**62, (1,), generator=self.generator))
        out_shape = (key[0], *geometric[0].size) if geometric else key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            plans = []
            for _ in range(len(images)):
                plans.append((_plan(geometric, key), _plan(colour, (3, *out_shape[1:]))))  # colour steps see RGB
        out = torch.empty((len(images), *out_shape), dtype=images.dtype if finish is None else torch.float32)

        def run(chunk: range) -> None:
            for i in chunk:
                if finish is None:
                    out[i] = augment_one(images[i], *plans[i])
                else:
                    finish(augment_one(images[i], *plans[i]), out[i])

        threads = min(torch.get_num_threads(), len(images) // MIN_IMAGES_PER_THREAD)
        if threads <= 1:
            run(range(len(images)))
            return out
        if self._pool_size != threads:
            if self._pool is not None:
                self._pool.shutdown()
            self._pool, self._pool_size = ThreadPoolExecutor(threads, thread_name_prefix="tlbench-augment"), threads
        bounds = [len(images) * k // threads for k in range(threads + 1)]
        for done in [self._pool.submit(run, range(a, b)) for a, b in zip(bounds, bounds[1:])]:
            done.result()
        return out

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        if batch.dim() != 4 or len(batch) == 0:
            return batch
        channels = batch.shape[1]
        mean, std = self.mean.expand(channels, 1, 1), self.std.expand(channels, 1, 1)

        def one(image, geometric, colour):
            image = _apply(image, geometric)
            if not colour:
                return image
            pixels = (image * std + mean).clamp(0.0, 1.0)
            if channels == 1:  # grey data: colour jitter on a 3-channel copy, back to one channel
                pixels = _apply(pixels.expand(3, -1, -1), colour).mean(dim=0, keepdim=True)
            else:
                pixels = _apply(pixels, colour)
            return (pixels - mean) / std

        out = self._each(batch.detach().float().cpu(), one)
        return out.to(device=batch.device, dtype=batch.dtype)

    def on_pixels(self, pixels: torch.Tensor, finish=None) -> torch.Tensor:
        """The same kind of view on uint8 ``(n, C, H, W)`` pixels, before normalisation (how
        streamed data is augmented: uint8 crops and colour steps cost half the float ones).
        ``finish(view, out_row)`` (tlbench.plugin.sources.pixel_normaliser) normalises each view
        into a float32 batch in the same threads, instead of returning uint8 views."""
        if pixels.dim() != 4 or len(pixels) == 0:
            return pixels
        grey = pixels.shape[1] == 1

        def one(image, geometric, colour):
            image = _apply(image, geometric)
            if not colour:
                return image
            return _apply(image.expand(3, -1, -1), colour)[:1] if grey else _apply(image, colour)

        return self._each(pixels, one, finish)

    def __del__(self):
        if self._pool is not None:
            self._pool.shutdown(wait=False)


def training_view(preset: str, preprocessing, generator: torch.Generator):
    """The per-batch augmentation of ``preset`` (None for ``none`` and for non-image data)."""
    if preset == "none" or getattr(preprocessing, "modality", "image") != "image":
        return None
    _pipeline(preset, 8, 8)  # an unknown name fails here
    return TrainingView(preset, preprocessing, generator)
