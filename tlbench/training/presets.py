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

import math
from concurrent.futures import ThreadPoolExecutor

import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from tlbench.settings.train import AUGMENT_PRESETS as PRESETS

RANDOM_APPLY = (v2.RandomHorizontalFlip, v2.RandomGrayscale)  # applied with probability ``p``
MIN_IMAGES_PER_THREAD = 8  # smaller batches are augmented in the calling thread
SPARE_BATCHES = 4  # float batch buffers a view keeps for reuse (a fresh 38 MB batch costs page faults)


def _pipeline(preset: str, height: int, width: int) -> tuple[list[v2.Transform], list[v2.Transform]]:
    """(geometric steps on normalised images, colour steps on [0, 1] images; empty when none)."""
    if preset == "tllib":
        return [v2.RandomResizedCrop((height, width), scale=(0.08, 1.0), antialias=True), v2.RandomHorizontalFlip()], []
    if preset == "domainbed":
        return ([v2.RandomResizedCrop((height, width), scale=(0.7, 1.0), antialias=True), v2.RandomHorizontalFlip()],
                [v2.ColorJitter(0.3, 0.3, 0.3, 0.3), v2.RandomGrayscale(0.1)])
    raise ValueError(f"unknown augmentation preset {preset!r}; use one of {', '.join(PRESETS)}")


def _crop_params(step: v2.RandomResizedCrop, height: int, width: int) -> dict:
    """``step.make_params`` for an image of ``height`` x ``width``: the same draws from torch's
    global generator, in the same order, with the same arithmetic (torchvision 0.29's algorithm:
    ten tries at an area and a log-uniform aspect ratio, then a centred fallback), without the
    input inspection that makes the library call cost four times as much per image."""
    area = height * width
    low, high = float(step._log_ratio[0]), float(step._log_ratio[1])
    for _ in range(10):
        target_area = area * torch.empty(1).uniform_(step.scale[0], step.scale[1]).item()
        aspect_ratio = torch.exp(torch.empty(1).uniform_(low, high)).item()
        w = int(round(math.sqrt(target_area * aspect_ratio)))
        h = int(round(math.sqrt(target_area / aspect_ratio)))
        if 0 < w <= width and 0 < h <= height:
            top = torch.randint(0, height - h + 1, size=(1,)).item()
            left = torch.randint(0, width - w + 1, size=(1,)).item()
            return dict(top=top, left=left, height=h, width=w)
    ratio = float(width) / float(height)  # no try fitted: the centred crop of the nearest allowed ratio
    if ratio < min(step.ratio):
        w, h = width, int(round(width / min(step.ratio)))
    elif ratio > max(step.ratio):
        w, h = int(round(height * max(step.ratio))), height
    else:
        w, h = width, height
    return dict(top=(height - h) // 2, left=(width - w) // 2, height=h, width=w)


def _plan(steps: list[v2.Transform], shape: tuple[int, ...]) -> list[tuple[v2.Transform, dict]]:
    """The random parameters of ``steps`` for one image of ``shape``, drawn from torch's global
    generator exactly as the steps' own ``forward`` draws them (a random-apply step's coin, then
    its ``make_params``), so a planned view equals the pipeline run image by image."""
    planned = []
    for step in steps:
        if isinstance(step, RANDOM_APPLY) and torch.rand(1) >= step.p:
            continue
        if isinstance(step, v2.RandomResizedCrop):
            planned.append((step, _crop_params(step, shape[-2], shape[-1])))
            shape = (shape[0], *step.size)
        elif isinstance(step, v2.RandomHorizontalFlip):
            planned.append((step, {}))  # a flip draws nothing beyond its coin
        else:
            planned.append((step, step.make_params([torch.empty(1, dtype=torch.uint8).expand(shape)])))
    return planned


_KERNELS = {  # the plain-tensor kernels that v2's transform() dispatches to, called directly
    v2.RandomResizedCrop: lambda step, image, params: F.resized_crop_image(
        image, **params, size=step.size, interpolation=step.interpolation, antialias=step.antialias),
    v2.RandomHorizontalFlip: lambda step, image, params: F.horizontal_flip_image(image),
}


def _apply(image: torch.Tensor, planned: list[tuple[v2.Transform, dict]]) -> torch.Tensor:
    for step, params in planned:
        kernel = _KERNELS.get(type(step))
        image = step.transform(image, params) if kernel is None else kernel(step, image, params)
    return image


class TrainingView:
    """``view(batch)``: a random augmented view of a normalised image batch, per image.

    A batch's random parameters are drawn first, in the calling thread, from one seed taken from
    the view's generator; the images are then transformed by up to ``torch.get_num_threads()``
    threads (the resize kernels release the GIL). Each image's result depends only on its own
    parameters, so the batch is the same whatever the thread count. Normalised float batches
    are written into recycled buffers once nothing holds the previous contents (measured 1.35x
    on 224-pixel batches: a fresh 38 MB batch spends a quarter of its time in page faults)."""

    def __init__(self, preset: str, preprocessing, generator: torch.Generator):
        self.preset, self.generator = preset, generator
        self.mean = torch.tensor(preprocessing.mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(preprocessing.std, dtype=torch.float32).view(-1, 1, 1)
        self._pipelines: dict[tuple, tuple] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._pool_size = 0
        self._spare: list[torch.Tensor] = []

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
        if finish is None:
            out = torch.empty((len(images), *out_shape), dtype=images.dtype)
        else:
            out = self._float_batch((len(images), *out_shape))

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
            # each thread's kernels run single-threaded: the pool already uses the cores, and
            # nested intra-op threads cost about 15 % here (a per-thread setting in torch)
            self._pool = ThreadPoolExecutor(threads, thread_name_prefix="tlbench-augment",
                                            initializer=torch.set_num_threads, initargs=(1,))
            self._pool_size = threads
        bounds = [len(images) * k // threads for k in range(threads + 1)]
        for done in [self._pool.submit(run, range(a, b)) for a, b in zip(bounds, bounds[1:])]:
            done.result()
        return out

    def _float_batch(self, shape: tuple[int, ...]) -> torch.Tensor:
        """An uninitialised float32 batch of ``shape``: a spare whose memory nothing else uses any
        more (no tensor, view or saved activation shares it), or a new one kept as a spare."""
        for base in self._spare:
            if base.shape == shape and _unshared(base):
                return base.view(shape)  # a new tensor object: while it lives, the spare is in use
        out = torch.empty(shape, dtype=torch.float32)
        if _unshared is not _never and len(self._spare) < SPARE_BATCHES:
            self._spare.append(out)
            return out.view(shape)
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


def _storage_users(tensor: torch.Tensor) -> int:
    return torch._C._storage_Use_Count(tensor.untyped_storage()._cdata)


def _never(tensor: torch.Tensor) -> bool:
    return False


try:  # how many tensors share a fresh tensor's memory, counted the way _unshared counts
    _ALONE = _storage_users(torch.empty(1))

    def _unshared(tensor: torch.Tensor) -> bool:
        """Whether only ``tensor`` itself holds its memory (torch's storage use count)."""
        return _storage_users(tensor) <= _ALONE
except (AttributeError, RuntimeError):  # a torch without the count: never reuse a batch
    _unshared = _never


def training_view(preset: str, preprocessing, generator: torch.Generator):
    """The per-batch augmentation of ``preset`` (None for ``none`` and for non-image data)."""
    if preset == "none" or getattr(preprocessing, "modality", "image") != "image":
        return None
    _pipeline(preset, 8, 8)  # an unknown name fails here
    return TrainingView(preset, preprocessing, generator)
