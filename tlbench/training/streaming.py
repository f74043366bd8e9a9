"""Streamed split inputs: lazy plugin data read batch by batch, never held whole in memory.

A dataset plugin may hand the core :class:`~tlbench.plugin.sources.ImageFiles` or
:class:`~tlbench.plugin.sources.PixelArray` instead of a float tensor. The core wraps it in
:class:`LazyRows` when the domain is loaded (class subsets and holdouts select rows without
reading anything) and, once the backbone's input shape is known, in :class:`StreamedInputs`:
a tensor-like object the training loop, evaluation, validators and estimators index exactly
as they index a tensor (``x[index]``, ``x[i:j]``, ``len(x)``, ``x.shape``). Each read gathers
uint8 rows from the decode cache (or the plugin's array), normalises them with the dataset's
preprocessing and moves them to the device; memory holds one batch, whatever the dataset size.
Reads are deterministic: the same rows give the same values in any process.
"""

from __future__ import annotations

import numpy as np
import torch

from tlbench.plugin.contracts import Preprocessing
from tlbench.plugin.sources import ImageFiles, PixelArray, is_lazy, normalise_pixels


def _select(rows: torch.Tensor, index) -> torch.Tensor:
    if isinstance(index, torch.Tensor):
        index = index.cpu()
        if index.dtype == torch.bool:
            return rows[index]
        return rows[index.long()]
    if isinstance(index, np.ndarray):
        return rows[torch.from_numpy(index)]
    if isinstance(index, (list, tuple)):
        return rows[torch.as_tensor(index, dtype=torch.long)]
    return rows[index]


class LazyRows:
    """A plugin's lazy split input seen through a selection of its rows (nothing read yet)."""

    def __init__(self, source, rows: torch.Tensor | None = None):
        if not is_lazy(source):
            raise TypeError(f"LazyRows wraps ImageFiles or PixelArray, not {type(source).__name__}")
        self.source = source
        self.rows = torch.arange(len(source)) if rows is None else rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index) -> "LazyRows":
        rows = _select(self.rows, index)
        return LazyRows(self.source, rows.reshape(-1))

    subset = __getitem__


class StreamedInputs:
    """Model inputs of a lazy split: ``x[index]`` reads, normalises and places those rows."""

    def __init__(self, reader, rows: torch.Tensor, preprocessing: Preprocessing, shape: tuple[int, ...], device):
        self.reader, self.rows, self.preprocessing = reader, rows, preprocessing
        self.input_shape, self.target = tuple(shape), torch.device(device)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.rows), *self.input_shape))

    @property
    def dtype(self):
        return torch.float32

    @property
    def device(self):
        return self.target

    def dim(self) -> int:
        return 1 + len(self.input_shape)

    def __getitem__(self, index) -> torch.Tensor:
        if isinstance(index, int):
            return self[index:index + 1][0] if index >= 0 else self[len(self) + index]
        rows = _select(self.rows, index).reshape(-1)
        pixels = torch.from_numpy(self.reader(rows.numpy()))
        from tlbench.training.data import adapt_inputs

        x = adapt_inputs(normalise_pixels(pixels, self.preprocessing), self.preprocessing, self.input_shape)
        return x.to(self.target)

    def subset(self, index) -> "StreamedInputs":
        """The rows ``index`` as another streamed input (nothing read)."""
        return StreamedInputs(self.reader, _select(self.rows, index).reshape(-1), self.preprocessing,
                              self.input_shape, self.target)

    def materialise(self, batch_size: int = 256) -> torch.Tensor:
        """Every row as one float tensor on the CPU (for callers that need an array)."""
        parts = [self.subset(torch.arange(i, min(i + batch_size, len(self)))) for i in range(0, len(self), batch_size)]
        if not parts:
            return torch.empty((0, *self.input_shape))
        return torch.cat([StreamedInputs(p.reader, p.rows, p.preprocessing, p.input_shape, "cpu")[:] for p in parts])

    def cpu(self) -> torch.Tensor:
        return self.materialise()

    def to(self, device, non_blocking: bool = False) -> torch.Tensor:
        return self.materialise().to(device, non_blocking=non_blocking)


def stream(lazy: LazyRows, preprocessing: Preprocessing, shape, device, cache, label: str) -> StreamedInputs:
    """``lazy`` bound to the backbone's input ``shape``: image files through the decode ``cache``
    (decoded at the dataset's own size, the size an in-memory plugin would have produced)."""
    source = lazy.source
    if isinstance(source, ImageFiles):
        pixels = cache.pixels(source.paths, preprocessing.input_shape, label)
        reader = pixels.read
    elif isinstance(source, PixelArray):
        array = source.array

        def reader(rows: np.ndarray) -> np.ndarray:
            return np.ascontiguousarray(array[rows])
    else:  # pragma: no cover - LazyRows refuses anything else
        raise TypeError(type(source).__name__)
    return StreamedInputs(reader, lazy.rows, preprocessing, shape, device)
