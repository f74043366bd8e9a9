"""Data plumbing: fitting a dataset's inputs to a backbone, few-shot subsets, batch sampling."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tlbench.plugin.contracts import IMAGE, Preprocessing, Split


def backbone_input_shape(pre: Preprocessing, backbone_meta: dict, backbone_options: dict | None = None) -> tuple[int, ...]:
    """The input shape a backbone gets for this dataset: its preferred size and channels.

    The backbone's register meta may declare ``in_channels`` and ``input_size`` ((h, w) or one
    side); a positive ``input_size`` backbone option overrides the meta (0 = keep the data's)."""
    shape = tuple(pre.input_shape)
    if pre.modality != IMAGE:
        return shape
    channels, height, width = shape
    if backbone_meta.get("in_channels"):
        channels = int(backbone_meta["in_channels"])
    size = (backbone_options or {}).get("input_size") or backbone_meta.get("input_size")
    if size:
        height, width = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
    return (channels, height, width)


def adapt_inputs(x: torch.Tensor, pre: Preprocessing, shape: tuple[int, ...]) -> torch.Tensor:
    """Resize images / repeat grey channels so ``x`` matches ``shape``; sequences pass through."""
    if pre.modality != IMAGE or tuple(x.shape[1:]) == tuple(shape):
        return x
    channels, height, width = shape
    if tuple(x.shape[2:]) != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
    if x.shape[1] != channels:
        if channels == 1:
            x = x.mean(dim=1, keepdim=True)  # colour source, grey target: luminance-like average
        elif x.shape[1] != 1:
            raise ValueError(f"cannot map {x.shape[1]} input channels to {channels}")
        else:
            x = x.expand(-1, channels, -1, -1).contiguous()
    return x


def adapted_preprocessing(pre: Preprocessing, shape: tuple[int, ...]) -> Preprocessing:
    """The preprocessing a raw input needs to reach ``shape`` (recorded in ONNX metadata)."""
    mean, std = tuple(pre.mean), tuple(pre.std)
    if pre.modality == IMAGE and len(mean) == 1 and shape[0] != 1:
        mean, std = mean * shape[0], std * shape[0]
    return Preprocessing(pre.modality, tuple(shape), mean, std, pre.scale)


def few_shot(split: Split, shots, generator: torch.Generator) -> Split | None:
    """``shots`` labeled examples per class (``"all"`` = the whole split, 0 = none)."""
    if shots == "all":
        return split
    if shots == 0:
        return None
    chosen = []
    for label in torch.unique(split.y).tolist():
        idx = torch.nonzero(split.y == label).flatten()
        perm = torch.randperm(len(idx), generator=generator)
        chosen.append(idx[perm[:shots]])
    index = torch.cat(chosen).sort().values
    return Split(split.x[index], split.y[index])


class DomainSampler:
    """``batch_size`` random rows from every domain per batch (DomainBed's sampling), each
    domain reshuffled after each of its passes; rows grouped by domain, in domain order."""

    def __init__(self, domains: torch.Tensor, batch_size: int, generator: torch.Generator):
        domains = domains.cpu()
        self.rows = [torch.nonzero(domains == d).flatten() for d in torch.unique(domains).tolist()]
        self.samplers = [Sampler(len(rows), batch_size, generator) for rows in self.rows]

    def __len__(self) -> int:
        return sum(len(rows) for rows in self.rows)

    def next_index(self) -> torch.Tensor:
        return torch.cat([rows[sampler.next_index()] for rows, sampler in zip(self.rows, self.samplers)])


class Sampler:
    """Random mini-batches (with replacement across epochs) from tensors already on the device."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator):
        self.n, self.batch_size, self.generator = n, batch_size, generator
        self._order = torch.empty(0, dtype=torch.long)

    def next_index(self) -> torch.Tensor:
        """Indices of the next batch; reshuffles after each pass over the data."""
        out = []
        need = min(self.batch_size, self.n)
        while need > 0:
            if len(self._order) == 0:
                self._order = torch.randperm(self.n, generator=self.generator)
            take = self._order[:need]
            self._order = self._order[need:]
            out.append(take)
            need -= len(take)
        return torch.cat(out)
