"""``[train]``: how every cell trains, selects, exports and measures (one typed, frozen object).

Each field's metadata is its single source of truth: default, valid range or choices, one-line doc,
whether it changes results (and so the run id) and whether it belongs to the source model.
``python -m tlbench.grid.settings_doc`` renders this table as docs/settings.md.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from types import MappingProxyType

from tlbench.settings.fields import Validated, build, field_specs, setting

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "step", "inverse")
AUGMENT_PRESETS = ("none", "tllib", "domainbed")  # tlbench/training/presets.py
TARGET_INPUTS = ("unlabeled", "withheld")  # withheld: domain generalisation (tlbench.grid.domains)


@dataclass(frozen=True)
class TrainSettings(Validated):
    """The ``[train]`` table (``--set train.KEY=VALUE``); validated on construction."""

    SECTION = "train"

    # -- budget
    source_epochs: float = setting(3.0, "Epochs of source-model training (the model is cached and shared by the grid).",
                                   low=0.0, high=10_000.0, in_v1_ids=True, source_model=True)
    steps: int = setting(150, "Optimizer steps of every transfer.", low=0, high=10_000_000, in_v1_ids=True)
    batch_size: int = setting(64, "Examples per training batch (source and target alike).", low=1, high=65_536,
                              in_v1_ids=True, source_model=True)
    augment: str = setting("none", "Training-time augmentation preset (image data): none; tllib (random-resized-crop "
                           "scale 0.08-1, flip); domainbed (random-resized-crop scale 0.7-1, flip, colour jitter 0.3, "
                           "grayscale p 0.1). Training batches only; evaluation sees the plain resized image.",
                           choices=AUGMENT_PRESETS, source_model=True)
    target_inputs: str = setting("unlabeled", "What training sees of the target domain besides its labeled shots: "
                                 "unlabeled (its training inputs, as domain adaptation does) or withheld (nothing: "
                                 "domain generalisation; with --shots 0 the target is seen only at test time).",
                                 choices=TARGET_INPUTS)
    # -- optimizer recipe (tlbench/training/optim.py); an adaptation loss may override these in its options
    optimizer: str = setting("adam", "Optimizer of source training and transfer.", choices=OPTIMIZERS, source_model=True, group="recipe")
    lr: float = setting(0.001, "Base learning rate; every parameter group scales it by its declared factor.",
                        low=1e-12, high=100.0, in_v1_ids=True, source_model=True, group="recipe")
    momentum: float = setting(0.9, "SGD momentum (sgd only).", low=0.0, high=0.9999, source_model=True, group="recipe")
    nesterov: bool = setting(False, "Nesterov momentum (sgd only).", source_model=True, group="recipe")
    weight_decay: float = setting(0.0, "Weight decay (decoupled for adamw).", low=0.0, high=10.0, source_model=True, group="recipe")
    schedule: str = setting("constant", "Learning-rate schedule: constant, cosine, step, or inverse annealing "
                            "lr0 (1 + gamma p)^-power (Ganin & Lempitsky, 2015).", choices=SCHEDULES, source_model=True, group="recipe")
    warmup: float = setting(0.0, "Fraction of the steps over which the rate ramps linearly up from ~0.",
                            low=0.0, high=1.0, source_model=True, group="recipe")
    schedule_gamma: float = setting(10.0, "inverse schedule: gamma.", low=0.0, high=1e6, source_model=True, group="recipe")
    schedule_power: float = setting(0.75, "inverse schedule: power.", low=0.0, high=100.0, source_model=True, group="recipe")
    step_every: float = setting(0.3, "step schedule: multiply by step_factor after every such fraction of the steps.",
                                low=1e-6, high=1.0, source_model=True, group="recipe")
    step_factor: float = setting(0.1, "step schedule: the factor.", low=0.0, high=1.0, source_model=True, group="recipe")
    # -- checkpoint selection (tlbench/training/selection.py)
    model_selection: str = setting("last", "Which checkpoint is reported: `last`, or the validator that picks it "
                                   "(source-val, entropy, im, snd, dev, target-oracle, ...).")
    selection_oracle: bool = setting(False, "Also score every checkpoint a validator scores with the target-oracle "
                                     "(target test accuracy), for reporting only: result.json's `oracle_selection` "
                                     "says which checkpoint the oracle would have picked and its accuracy (DomainBed's "
                                     "test-domain validation beside the honest rule); the reported model is unchanged.",
                                     changes_results=False)
    selection_every: int = setting(25, "Steps between checkpoint scores when model_selection is a validator.",
                                   low=1, high=10_000_000)
    bn_recalibration_batches: int = setting(
        20, "After training, BatchNorm statistics are recomputed over this many batches of the training mix "
        "(0 keeps the running averages).", low=0, high=100_000, in_v1_ids=True, source_model=True)
    # -- deployment and measurement
    export_dynamo: bool = setting(True, "Export with torch.export (dynamo); false uses the TorchScript exporter.",
                                  in_v1_ids=True)
    int8: bool = setting(True, "Also quantize every exported model to INT8 and measure its accuracy and latency.",
                         in_v1_ids=True)
    verify_with: str = setting("", "A second runtime that re-checks every exported model (e.g. openvino; empty: none).",
                               changes_results=False)
    latency_repeats: int = setting(30, "Timed repetitions per latency figure.", low=1, high=100_000,
                                   changes_results=False, in_v1_ids=True)
    eval_batch_size: int = setting(512, "Rows per evaluation, export-check and calibration batch.", low=1, high=65_536,
                                   changes_results=False, in_v1_ids=True)
    # -- speed (tlbench/training/speed.py); AMP, channels_last, cudnn_benchmark and non_blocking act on CUDA only
    amp: bool = setting(True, "Mixed precision on CUDA (bfloat16 where supported, else float16).", in_v1_ids=True)
    channels_last: bool = setting(True, "channels_last memory format for image models on CUDA.",
                                  changes_results=False, in_v1_ids=True)
    cudnn_benchmark: bool = setting(True, "cuDNN autotuning on CUDA.", changes_results=False, in_v1_ids=True)
    non_blocking: bool = setting(True, "Asynchronous host-to-device copies on CUDA.", changes_results=False,
                                 in_v1_ids=True)
    device_data_max_mb: float = setting(2048.0, "Datasets up to this size live on the GPU; larger ones stay in "
                                        "host memory, fed by a DataLoader.", low=0.0, high=1e9,
                                        changes_results=False, in_v1_ids=True)
    loader_workers: int = setting(2, "DataLoader worker processes for host-resident data.", low=0, high=64,
                                  changes_results=False, in_v1_ids=True)
    decode_cache_dir: str = setting("", "Where lazy image datasets are decoded once, as uint8 arrays shared by every cell and "
                                    "later runs (empty: $TLBENCH_CACHE_DIR/decoded or ~/.cache/tlbench/decoded).",
                                    changes_results=False)
    decode_cache_max_gb: float = setting(100.0, "Size limit of the decode cache; least recently used entries are removed "
                                         "to stay under it (0: no limit).", low=0.0, high=1e6, changes_results=False)
    pin_memory: bool = setting(True, "Pinned host memory for host-resident data on CUDA.", changes_results=False,
                               in_v1_ids=True)

    @classmethod
    def from_dict(cls, given: dict | None, what: str = "train") -> "TrainSettings":
        """Defaults overridden by ``given`` (validated; unknown keys are UserErrors)."""
        return build(cls, what, {} if given is None else given)

    @classmethod
    def from_record(cls, stored: dict | None) -> "TrainSettings":
        """The settings a stored result recorded; keys this version does not know are dropped."""
        known = field_specs(cls)
        return cls.from_dict({k: v for k, v in (stored or {}).items() if k in known})

    def replace(self, **changes) -> "TrainSettings":
        """A copy with ``changes`` applied (validated)."""
        return build(type(self), "train", changes, base=self)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def recipe(self) -> dict:
        """The optimizer recipe keys (tlbench.training.optim) as a plain dict."""
        return {name: getattr(self, name) for name in RECIPE_KEYS}


RECIPE_KEYS = tuple(name for name, spec in field_specs(TrainSettings).items() if spec.group == "recipe")
"""The optimizer recipe's fields (tlbench.training.optim): those declared with ``group="recipe"``;
an adaptation loss may override them in its options."""
RECIPE_DEFAULTS = MappingProxyType({name: field_specs(TrainSettings)[name].default for name in RECIPE_KEYS})
"""Their defaults, read from the same metadata (read-only)."""
LAST_STEP = TrainSettings.model_selection
"""``model_selection``'s default: report the last training step (no validator picks a checkpoint)."""
EVAL_BATCH_SIZE = TrainSettings.eval_batch_size
"""``eval_batch_size``'s default: the batch of helpers called without settings at hand."""
