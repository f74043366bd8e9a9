"""Random views of a batch for contrastive losses: per-example crops/jitter for images,
jitter/scaling/shift for sequences. Works on already-normalised tensors on any device."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def _uniform(n: int, low: float, high: float, generator) -> Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def image_view(
    x: Tensor,
    generator: torch.Generator | None = None,
    scale: tuple[float, float] = (0.85, 1.15),
    max_rotation_deg: float = 12.0,
    max_translate: float = 0.12,
    contrast: float = 0.2,
    brightness: float = 0.2,
    noise: float = 0.1,
) -> Tensor:
    """A random affine crop (zoom, rotation, translation) per example, then contrast/brightness
    jitter and Gaussian noise. ``x`` is ``(batch, channels, height, width)``."""
    n = x.shape[0]
    zoom = _uniform(n, *scale, generator)
    angle = _uniform(n, -max_rotation_deg, max_rotation_deg, generator) * math.pi / 180.0
    shift = _uniform(2 * n, -max_translate, max_translate, generator).view(n, 2) * 2.0
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    # "border" repeats the edge, which for centred objects is background, whatever the normalisation.
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    gain = _uniform(n, 1 - contrast, 1 + contrast, generator).view(n, 1, 1, 1).to(x.device, x.dtype)
    offset = _uniform(n, -brightness, brightness, generator).view(n, 1, 1, 1).to(x.device, x.dtype)
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    out = (out - mean) * gain + mean + offset
    return out + noise * torch.randn(x.shape, generator=generator).to(x.device, x.dtype)


def sequence_view(
    x: Tensor,
    generator: torch.Generator | None = None,
    gain: float = 0.1,
    offset: float = 0.1,
    noise: float = 0.05,
    max_shift: float = 0.1,
) -> Tensor:
    """Per-example, per-channel gain and offset, a random circular time shift, and jitter.
    ``x`` is ``(batch, time, features)``."""
    n, steps, channels = x.shape[0], x.shape[1], x.shape[-1]
    scale = 1.0 + gain * torch.randn((n, 1, channels), generator=generator)
    bias = offset * torch.randn((n, 1, channels), generator=generator)
    out = x * scale.to(x.device, x.dtype) + bias.to(x.device, x.dtype)
    limit = int(max_shift * steps)
    if limit > 0:
        shifts = torch.randint(-limit, limit + 1, (n,), generator=generator)
        index = (torch.arange(steps).view(1, -1) - shifts.view(-1, 1)) % steps
        out = torch.gather(out, 1, index.to(x.device).unsqueeze(-1).expand(-1, -1, out.shape[-1]))
    return out + noise * torch.randn(x.shape, generator=generator).to(x.device, x.dtype)
