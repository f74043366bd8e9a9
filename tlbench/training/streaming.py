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
from tlbench.plugin.sources import ImageFiles, PixelArray, is_lazy, normalise_pixels, pixel_normaliser


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
        self._into = None

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
        return self._read(index)

    def read_view(self, index, view) -> torch.Tensor:
        """``self[index]`` through a training view applied to the uint8 pixels before they are
        normalised (tlbench.training.presets.TrainingView.on_pixels)."""
        return self._read(index, view)

    def _read(self, index, view=None) -> torch.Tensor:
        """Rows ``index``: uint8 from the reader, (the view,) normalised, fitted to the input shape, placed."""
        return self.finish(self.pixels(index), view)

    def pixels(self, index) -> torch.Tensor:
        """The uint8 rows ``index`` as stored (before any view or normalisation)."""
        rows = _select(self.rows, index).reshape(-1)
        return torch.from_numpy(self.reader(rows.numpy()))

    def finish(self, pixels: torch.Tensor, view=None) -> torch.Tensor:
        """uint8 ``pixels`` of this input as model inputs: through ``view`` when given, then
        normalised, fitted to the input shape and placed on the device."""
        from tlbench.training.data import adapt_inputs

        if view is None:
            x = normalise_pixels(pixels, self.preprocessing)
        elif tuple(pixels.shape[1:]) == self.input_shape:  # each view normalised where it is made
            x = view.on_pixels(pixels, finish=self._normaliser())
        else:
            x = normalise_pixels(view.on_pixels(pixels), self.preprocessing)
        return adapt_inputs(x, self.preprocessing, self.input_shape).to(self.target)

    def _normaliser(self):
        if self._into is None:
            self._into = pixel_normaliser(self.preprocessing, self.input_shape[0])
        return self._into

    def subset(self, index) -> "StreamedInputs":
        """The rows ``index`` as another streamed input (nothing read)."""
        return StreamedInputs(self.reader, _select(self.rows, index).reshape(-1), self.preprocessing,
                              self.input_shape, self.target)

    def materialise(self) -> torch.Tensor:
        """Every row as one float tensor on the CPU: memory grows with the split; the core
        itself never calls it (it slices, or uses :meth:`numpy`)."""
        return self.cpu()[:]

    def cpu(self) -> "StreamedInputs":
        """The same rows, read onto the CPU (still lazy)."""
        return self.to("cpu")

    def numpy(self) -> "NumpyRows":
        """A lazy numpy view: slices and row arrays come back as float32 ``np.ndarray``."""
        return NumpyRows(self.cpu())

    def to(self, device, non_blocking: bool = False) -> "StreamedInputs":
        return StreamedInputs(self.reader, self.rows, self.preprocessing, self.input_shape, device)


class NumpyRows:
    """Streamed inputs as onnxruntime, the quantizer and the input statistics read them: an
    indexable float32 array whose rows are read when sliced (``x[i:j]``, ``x[rows]``)."""

    def __init__(self, inputs: StreamedInputs):
        self.inputs = inputs

    def __len__(self) -> int:
        return len(self.inputs)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.inputs.shape)

    @property
    def ndim(self) -> int:
        return self.inputs.dim()

    dtype = np.dtype(np.float32)

    def astype(self, dtype, copy: bool = True) -> "NumpyRows":
        if np.dtype(dtype) != np.float32:
            raise TypeError(f"streamed inputs are float32, not {np.dtype(dtype)}")
        return self

    def __getitem__(self, index) -> np.ndarray:
        return self.inputs[index].numpy()

    def __array__(self, dtype=None, copy=None):
        out = self.inputs.materialise().numpy()
        return out if dtype is None else out.astype(dtype)


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
