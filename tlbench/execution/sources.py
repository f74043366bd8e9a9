"""Several source domains as one labeled split (a grid's ``--source a+b``).

The parts are fitted to the backbone's input shape one by one (each with its own dataset's
preprocessing) and then joined: rows keep their order, part after part, and ``Split.domains``
says which part each row came from (0, 1, ... in the order of the canonical source string), so
losses and strategies can use it. In-memory parts are concatenated; a streamed part (image files
through the decode cache) stays streamed, each part reading its own cache entry, so a domain is
decoded once whichever sets it appears in.
"""

from __future__ import annotations

import torch

from tlbench.plugin.contracts import Split
from tlbench.training.streaming import StreamedInputs, _select


def combined_fingerprint(prints: list[str]) -> str:
    """One fingerprint of several splits' fingerprints, in order (a multi-source split)."""
    import hashlib

    return hashlib.sha256("+".join(prints).encode()).hexdigest()[:16]


def join_sources(parts: list[Split]) -> Split:
    """One split of every row of ``parts`` in order, with ``domains`` = each row's part index."""
    if len(parts) == 1:
        return parts[0]
    xs = [p.x for p in parts]
    x = torch.cat(xs) if all(type(v) is torch.Tensor for v in xs) else ChainedInputs(xs)
    y = torch.cat([p.y for p in parts])
    domains = torch.cat([torch.full((len(p),), i, dtype=torch.long, device=p.y.device) for i, p in enumerate(parts)])
    return Split(x, y, domains)


class ChainedInputs:
    """Model inputs of several splits read as one: ``x[index]`` reads each row from the part
    holding it (streamed parts read their own rows) and returns them in the order asked."""

    def __init__(self, parts: list, rows: torch.Tensor | None = None):
        self.parts = list(parts)
        sizes = torch.tensor([len(p) for p in self.parts])
        self.offsets = torch.cat([torch.zeros(1, dtype=torch.long), sizes.cumsum(0)])
        self.rows = torch.arange(int(self.offsets[-1])) if rows is None else rows

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.rows), *self.parts[0].shape[1:]))

    @property
    def dtype(self):
        return torch.float32

    @property
    def device(self):
        return self.parts[0].device

    def dim(self) -> int:
        return len(self.shape)

    def __getitem__(self, index) -> torch.Tensor:
        if isinstance(index, int):
            return self[index:index + 1][0] if index >= 0 else self[len(self) + index]
        return self._read(_select(self.rows, index).reshape(-1))

    def read_view(self, index, view) -> torch.Tensor:
        """``self[index]`` through a training view, its random parameters drawn once over the
        whole batch as for a single source. Streamed parts of one preprocessing are viewed as
        uint8 pixels (the single-source path); others through the view on the normalised rows."""
        rows = _select(self.rows, index).reshape(-1)
        first = self.parts[0]
        if all(isinstance(p, StreamedInputs) and p.preprocessing == first.preprocessing
               and p.input_shape == first.input_shape for p in self.parts):
            return first.finish(self._gather(rows, lambda part, local: part.pixels(local)), view)
        return view(self._read(rows))

    def _read(self, rows: torch.Tensor) -> torch.Tensor:
        return self._gather(rows, lambda part, local: part[local])

    def _gather(self, rows: torch.Tensor, read) -> torch.Tensor:
        """``read(part, local_rows)`` of each part holding some of ``rows``, put back in order."""
        part_of = torch.bucketize(rows, self.offsets[1:], right=True)
        out = None
        for p in torch.unique(part_of).tolist():
            where = torch.nonzero(part_of == p).flatten()
            values = read(self.parts[p], rows[where] - self.offsets[p])
            if out is None:
                out = torch.empty((len(rows), *values.shape[1:]), dtype=values.dtype, device=values.device)
            out[where.to(values.device)] = values
        if out is None:
            return torch.empty((0, *self.shape[1:]), dtype=self.dtype, device=self.device)
        return out

    def subset(self, index) -> "ChainedInputs":
        """The rows ``index`` as another chained input (nothing read)."""
        return ChainedInputs(self.parts, _select(self.rows, index).reshape(-1))

    def to(self, device, non_blocking: bool = False) -> "ChainedInputs":
        return ChainedInputs([p.to(device) for p in self.parts], self.rows)

    def cpu(self) -> "ChainedInputs":
        return self.to("cpu")

    def numpy(self):
        """A lazy float32 numpy view (rows read when sliced), as for streamed inputs."""
        from tlbench.training.streaming import NumpyRows

        return NumpyRows(self.cpu())

    def materialise(self) -> torch.Tensor:
        """Every row as one float tensor: memory grows with the split."""
        return self[:]
