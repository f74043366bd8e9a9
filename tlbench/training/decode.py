"""Image files as a torch Dataset of uint8 pixels, decoded by the data path's one decoder
(:func:`tlbench.plugin.sources.decode_image`).

Measured by ``benchmarks/data_pipeline.py`` (results/benchmarks/data_pipeline.md).
"""

from __future__ import annotations

import torch

from tlbench.plugin.sources import decode_image


class DecodedFiles(torch.utils.data.Dataset):
    """Image files as a torch Dataset of uint8 ``(channels, height, width)`` tensors, for a
    DataLoader's worker processes (the decode cache is built through one)."""

    def __init__(self, paths, height: int, width: int, channels: int = 3):
        self.paths, self.size, self.channels = tuple(paths), (int(height), int(width)), int(channels)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.from_numpy(decode_image(self.paths[index], *self.size, self.channels))
