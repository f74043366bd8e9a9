"""The data of a cell: domains loaded once per process, narrowed to their effective classes.

A source or target string (``digits:mnist``, ``digits:uci[5-9]``, ``pretrained``; see
``tlbench.grid.domains``) becomes a :class:`TaskView` (the dataset seen through the classes that
domain really has, so labels, ONNX metadata and head sizes follow them) and its splits, with
labels renumbered 0..k-1 when only some of the dataset's classes are kept.
"""

from __future__ import annotations

import torch

from tlbench.execution.audit import split_fingerprint
from tlbench.grid.dataset_options import built_dataset, dataset_key, label_space
from tlbench.grid.domains import is_pretrained, parse_domain
from tlbench.plugin.contracts import DomainData, Split
from tlbench.plugin.sources import is_lazy
from tlbench.training.streaming import LazyRows


class TaskView:
    """A dataset through one domain's effective classes: ``classes``, ``preprocessing``, ``augment``."""

    def __init__(self, dataset, classes: tuple[str, ...]):
        self.dataset = dataset
        self.classes = tuple(classes)
        self.preprocessing = dataset.preprocessing

    def augment(self, x, generator=None):
        return self.dataset.augment(x, generator)


def restrict(split: Split, indices: tuple[int, ...]) -> Split:
    """Only the rows whose label is in ``indices``, relabelled by position in ``indices``."""
    wanted = torch.tensor(indices, dtype=split.y.dtype, device=split.y.device)
    keep = torch.isin(split.y, wanted)
    lookup = torch.full((int(max(int(split.y.max()), max(indices))) + 1,), -1, dtype=split.y.dtype, device=split.y.device)
    lookup[wanted] = torch.arange(len(indices), dtype=split.y.dtype, device=split.y.device)
    return type(split)(split.x[keep], lookup[split.y[keep]])


class DomainCache:
    """Datasets built and domains loaded once per process, keyed by their options."""

    def __init__(self, registry):
        self.registry = registry
        self.datasets: dict[str, object] = {}
        self.domains: dict[str, DomainData] = {}
        self.prints: dict[str, dict[str, str]] = {}

    def dataset(self, name: str, options: dict | None = None):
        """The dataset ``name`` built with ``options``."""
        return built_dataset(self.registry, name, options or {}, self.datasets)

    def domain(self, value: str, options: dict | None = None) -> tuple[TaskView, DomainData]:
        """(TaskView, DomainData) of ``dataset:domain[subset]``."""
        ref = parse_domain(value)
        dataset = self.dataset(ref.dataset, options)
        key = dataset_key(ref.qualified, options or {})
        if key not in self.domains:
            loaded = dataset.load(ref.domain)
            self.domains[key] = DomainData(_rows_of(loaded.train), _rows_of(loaded.test))
        data = self.domains[key]
        _, names, indices = label_space(self.registry, ref, options or {}, self.datasets)
        if indices is not None:
            data = DomainData(restrict(data.train, indices), restrict(data.test, indices))
        return TaskView(dataset, names), data

    def fingerprints(self, value: str, options: dict | None = None) -> dict[str, str]:
        """``{"train": ..., "test": ...}`` fingerprints of the splits :meth:`domain` gives (computed
        once per process: a folder of image files is stat'ed file by file)."""
        key = dataset_key(parse_domain(value).qualified, options or {})
        if key not in self.prints:
            data = self.domain(value, options)[1]
            self.prints[key] = {"train": split_fingerprint(data.train), "test": split_fingerprint(data.test)}
        return self.prints[key]


def _rows_of(split: Split) -> Split:
    """A lazy input declaration (tlbench.plugin.sources) wrapped so row selections stay lazy."""
    if not is_lazy(split.x):
        return split
    if len(split.x) != len(split.y):
        raise ValueError(f"a lazy split has {len(split.x)} inputs for {len(split.y)} labels")
    return type(split)(LazyRows(split.x), split.y)


def empty_like(split: Split) -> Split:
    """A zero-row split with ``split``'s input shape (the source data of a pretrained source)."""
    return type(split)(split.x[:0], split.y[:0])


def source_is_data(spec) -> bool:
    """Does this cell have a source dataset (rather than pretrained weights)?"""
    return not is_pretrained(spec.source)


def target_inputs_seen(spec, data: dict):
    """The target's training inputs as training and validators may read them; None when
    ``train.target_inputs`` withholds them (domain generalisation)."""
    return None if spec.train.target_inputs == "withheld" else data["target_train"].x


def withheld_inputs(shape, device) -> torch.Tensor:
    """A zero-row input batch: what ``ctx.target_unlabeled`` holds when the target is withheld."""
    return torch.empty((0, *shape), device=device)


def calibration_inputs(spec, data: dict):
    """The inputs INT8 is calibrated on and the exported input statistics describe: the target's
    training inputs, or, when those are withheld, the source's (what training saw)."""
    seen = target_inputs_seen(spec, data)
    if seen is not None:
        return seen
    source = data["source_train"].x
    return source if len(source) else None


def source_domain_sizes(data: dict) -> dict[str, int] | None:
    """Training rows per source domain (None for a pretrained source), for result.json."""
    names = data.get("source_domains") or ()
    if not names:
        return None
    train = data["source_train"]
    if train.domains is None:
        return {names[0]: len(train)}
    counts = torch.bincount(train.domains.cpu(), minlength=len(names)).tolist()
    return dict(zip(names, counts))
