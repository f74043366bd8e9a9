"""The public plugin contracts: what a dataset, strategy and adaptation loss provide.

Backbones need no base class: any ``nn.Module`` with an ``out_features`` attribute that maps
an input batch to ``(batch, out_features)`` features will do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

IMAGE = "image"
SEQUENCE = "sequence"
MODALITIES = (IMAGE, SEQUENCE)


@dataclass
class Split:
    """Inputs (already normalised float tensors) and integer labels of one split. ``domains``
    (set by the core for a multi-source cell, None otherwise) gives each row's source domain as
    an index into ``TransferContext.source_domains``."""

    x: Tensor
    y: Tensor
    domains: Tensor | None = None

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device) -> "Split":
        return Split(self.x.to(device), self.y.to(device), None if self.domains is None else self.domains.to(device))

    def take(self, index: Tensor) -> "Split":
        """The rows ``index`` (inputs, labels and domains alike); streamed and host-resident
        inputs stay so (``subset``)."""
        x = self.x.subset(index) if hasattr(self.x, "subset") else self.x[index.to(self.x.device)]
        domains = None if self.domains is None else self.domains[index.to(self.domains.device)]
        return type(self)(x, self.y[index.to(self.y.device)], domains)


@dataclass
class DomainData:
    """The fixed train/test split of one domain."""

    train: Split
    test: Split


@dataclass
class Preprocessing:
    """How raw inputs become model inputs; stored in the ONNX metadata for ``tlbench predict``.

    Images: raw pixels are scaled by ``scale`` (1/255 for 8-bit), converted to ``input_shape``'s
    channel count and size, then normalised with ``mean``/``std`` per channel. Sequences:
    ``(time, features)`` arrays normalised per feature.
    """

    modality: str
    input_shape: tuple[int, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    scale: float = 1.0 / 255.0

    def as_dict(self) -> dict:
        return {
            "modality": self.modality,
            "input_shape": list(self.input_shape),
            "mean": list(self.mean),
            "std": list(self.std),
            "scale": self.scale,
        }


class Dataset:
    """Base class for dataset plugins: named domains over one label space."""

    domains: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    preprocessing: Preprocessing

    def load(self, domain: str) -> DomainData:
        """Return the fixed, seeded train/test split of ``domain`` as normalised tensors."""
        raise NotImplementedError

    def domain_classes(self, domain: str) -> tuple[str, ...] | None:
        """The classes present in ``domain`` when domains differ in classes (image folders),
        as names from ``classes``; None (the default) = every domain has all of ``classes``.
        The core keeps only those rows and renumbers their labels; two domains whose classes
        differ are a task-transfer pair."""
        return None

    def check_domain(self, domain: str) -> None:
        """Raise a one-line UserError when ``domain``'s data is missing or laid out wrongly. Called
        when the grid is validated, before anything trains, for datasets read from ``data_root``.
        The default checks nothing."""

    def augment(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """A random view of a batch, for contrastive losses. Default: mild noise and shift."""
        return default_augment(x, self.preprocessing.modality, generator)


def default_augment(x: Tensor, modality: str, generator: torch.Generator | None = None) -> Tensor:
    """Modality-aware augmentation (see ``tlbench.plugin.augment``): images get a per-example random
    affine crop, contrast/brightness jitter and noise; sequences gain, offset, time shift, jitter."""
    from tlbench.plugin.augment import image_view, sequence_view

    if modality == IMAGE:
        return image_view(x, generator)
    return sequence_view(x, generator)


@dataclass
class Phase:
    """One stage of transfer training: which parameters train, at which learning rates, how long."""

    name: str
    param_groups: list[dict]
    steps: int


@dataclass
class TransferContext:
    """Everything a strategy or loss may look at while setting up a transfer."""

    source_state: dict[str, Tensor] | None
    source_train: Split
    target_labeled: Split | None
    target_unlabeled: Tensor
    num_classes: int
    shots: int | str
    steps: int
    lr: float
    batch_size: int
    device: torch.device
    generator: torch.Generator
    augment: Callable[[Tensor], Tensor]
    log: Callable[[str], None] = print
    extra: dict[str, Any] = field(default_factory=dict)
    # The optimizer recipe of this transfer ([train] overridden by the loss's recipe keys; see
    # tlbench.training.optim) and how many batches recalibrate BatchNorm afterwards.
    recipe: dict[str, Any] | None = None
    bn_batches: int = 0
    # Task transfer: source and target label spaces differ (or the source is pretrained weights),
    # so the model's head is a fresh one of the target's size (never the source head) and
    # ``source_num_classes`` is the size of the source model's head in ``source_state``.
    label_spaces_differ: bool = False
    source_num_classes: int | None = None
    # ``train.augment``'s preset (tlbench.training.presets): applied by the core to every training
    # batch it draws; None when there is none. Evaluation never sees it.
    train_view: Callable[[Tensor], Tensor] | None = None
    # The source domains ("dataset:domain", in the order of ``source_train.domains``): one for a
    # single source. Domain generalisation: ``target_unlabeled`` has no rows (the target is withheld).
    source_domains: tuple[str, ...] = ()


def _merge_hparams(cls, given: dict) -> dict:
    return {**cls.defaults, **given}


class Strategy(nn.Module):
    """Base class for transfer strategies. The default is a plain full fine-tune.

    Subclasses set ``defaults`` (their hyperparameters), and override what differs:
    ``init_from_source`` (start from the source model or from random weights),
    ``uses_source_labels`` (labeled source batches keep flowing into ``source_loss``),
    ``setup``, ``phases`` and ``regulariser``. A strategy may own parameters (an extra head);
    they train but are never exported.
    """

    defaults: ClassVar[dict] = {}
    init_from_source: ClassVar[bool] = True
    uses_source_labels: ClassVar[bool] = False
    # Reads ``ctx.target_unlabeled`` (the target's training inputs): refused where they are withheld
    needs_target_unlabeled: ClassVar[bool] = False
    # Set when source labels go through the model's (target) head: such a strategy is refused on
    # task-transfer pairs. A strategy learns which case a cell is in from ctx.label_spaces_differ.
    needs_shared_labels: ClassVar[bool] = False

    def __init__(self, **hparams):
        super().__init__()
        self.hparams = _merge_hparams(type(self), hparams)

    def setup(self, model: nn.Module, ctx: TransferContext) -> None:
        """Prepare before training (reset the head, remember source weights, fit weights...)."""

    def phases(self, model: nn.Module, ctx: TransferContext) -> list[Phase]:
        """The training phases; by default one phase training every parameter at ``ctx.lr``."""
        return [Phase("finetune", [{"params": list(model.parameters()), "lr": ctx.lr}], ctx.steps)]

    def regulariser(self, model: nn.Module) -> Tensor | None:
        """An extra penalty added to the loss at every step, or None."""
        return None

    def source_loss(self, model: nn.Module, features: Tensor, labels: Tensor, index: Tensor) -> Tensor:
        """Loss on a labeled source batch (only called when ``uses_source_labels``)."""
        return F.cross_entropy(model.head(features), labels)

    def summary(self) -> dict:
        """JSON-ready facts about what the strategy did (stages frozen, weight statistics...),
        recorded in result.json as ``strategy_summary``; empty by default."""
        return {}


@dataclass
class AdaptationBatch:
    """What an adaptation loss sees at one step."""

    source_features: Tensor
    source_logits: Tensor
    target_features: Tensor
    target_logits: Tensor
    target_inputs: Tensor
    model: nn.Module
    augment: Callable[[Tensor], Tensor]
    progress: float
    source_inputs: Tensor | None = None
    # each source row's domain (an index into TransferContext.source_domains); None: one source
    source_domains: Tensor | None = None
    # the source rows' labels (given to domain-generalisation losses, which weigh risks per domain)
    source_labels: Tensor | None = None


class AdaptationLoss(nn.Module):
    """Base class for adaptation losses between source and unlabeled target features.

    ``forward(batch)`` returns an unweighted scalar (or None: no adaptation term, as the
    ``control`` loss does); the training loop multiplies it by the ``weight`` hyperparameter.
    Parameters the loss owns (a domain discriminator) are created in ``setup`` and trained with
    the model, but never exported; they train at the head's learning rate, or at
    ``lr x lr_scale`` when ``defaults`` declares an ``lr_scale``. A loss with
    ``needs_target_unlabeled = False`` is never called (source-only training). With
    ``uses_source_labels`` (the default) the loop adds cross-entropy on the labeled source batch
    when the strategy does not already, so the classifier stays anchored while features adapt
    (the usual UDA objective: source CE + weight * adaptation loss).

    ``needs_shared_labels`` (default True) refuses the loss on task-transfer pairs (source and
    target with different classes); set it False only when nothing reads the head on the other
    domain's data.

    Training recipe: any ``[train]`` recipe key (``optimizer``, ``lr``, ``momentum``,
    ``weight_decay``, ``schedule``, ``warmup``, ...; see ``tlbench.training.optim``) among
    ``defaults`` overrides ``[train]`` for this loss's transfers, so a method trains the way its
    paper did; users change it with ``--set NAME.KEY=VALUE``. ``gradient_steps = False`` makes a
    training-free method (no optimizer step at all); ``bn_statistics`` says over which inputs
    BatchNorm statistics are recomputed after training: ``"training"`` (the mix the loop trained
    on) or ``"target"`` (unlabeled target only, as AdaBN does).
    """

    defaults: ClassVar[dict] = {"weight": 1.0}
    needs_target_unlabeled: ClassVar[bool] = True
    # Domain generalisation: an objective over several labeled source domains that never reads the
    # target. Each step then draws ``batch_size`` rows from every source domain, and the batch
    # carries ``source_domains`` and ``source_labels``; ``uses_source_labels = False`` makes the
    # loss's value the whole supervised objective (Group DRO, Mixup), recorded as the ``source``
    # term. ``min_source_domains``: fewer source domains than this is refused at validation.
    domain_generalisation: ClassVar[bool] = False
    min_source_domains: ClassVar[int] = 1
    uses_source_labels: ClassVar[bool] = True
    gradient_steps: ClassVar[bool] = True
    bn_statistics: ClassVar[str] = "training"
    # Needs source and target to share a label space (source labels through the model's head,
    # or source-head predictions read on target data); refused on task-transfer pairs.
    needs_shared_labels: ClassVar[bool] = True

    def __init__(self, **hparams):
        super().__init__()
        self.hparams = _merge_hparams(type(self), hparams)

    @property
    def weight(self) -> float:
        return float(self.hparams.get("weight", 1.0))

    def setup(self, feature_dim: int, num_classes: int, ctx: TransferContext) -> None:
        """Create owned parameters once feature size and class count are known."""

    def forward(self, batch: AdaptationBatch) -> Tensor | None:  # pragma: no cover - abstract
        raise NotImplementedError
