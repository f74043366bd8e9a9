"""RunSpec: one validated grid cell, its settings' defaults and its stable run id."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from tlbench.grid.domains import DOMAIN_ADAPTATION, dataset_name, safe_name
from tlbench.training.optim import RECIPE_DEFAULTS

LIST_KEYS = ("backbone", "source", "target", "strategy", "loss", "shots", "seeds")
SCALAR_KEYS = ("results_dir", "device", "data_root", "download", "executor", "workers", "devices", "ray_address", "threads")
TABLE_KEYS = ("train", "set", "search")  # [search]: tlbench.search.trials
KNOWN_KEYS = LIST_KEYS + SCALAR_KEYS + TABLE_KEYS
PLUGIN_KINDS = {"backbone": "backbones", "strategy": "strategies", "loss": "adaptation_losses", "dataset": "datasets"}

TRAIN_DEFAULTS = {
    "source_epochs": 3.0,
    "steps": 150,
    "batch_size": 64,
    # The optimizer recipe (tlbench/training/optim.py): optimizer, lr, momentum, nesterov,
    # weight_decay, schedule, warmup, schedule_gamma/power, step_every/factor.
    **RECIPE_DEFAULTS,
    "eval_batch_size": 512,
    "latency_repeats": 30,
    "export_dynamo": True,
    "int8": True,  # also quantize every exported model to INT8 and measure it
    "verify_with": "",  # a second runtime that re-checks every exported model (tlbench.deploy.verifiers)
    # Speed settings (tlbench/training/speed.py). AMP, channels_last, cudnn_benchmark and non_blocking act on CUDA only.
    "amp": True,
    "channels_last": True,
    "cudnn_benchmark": True,
    "non_blocking": True,
    "device_data_max_mb": 2048.0,  # larger datasets stay in host memory, fed by a DataLoader
    "loader_workers": 2,
    "pin_memory": True,
    # Which checkpoint is reported (tlbench/training/selection.py): `last`, or the name of the validator
    # that picks it (source-val, entropy, im, snd, dev, target-oracle...), scored every `selection_every` steps.
    "model_selection": "last",
    "selection_every": 25,
    # After training, BatchNorm running statistics are recomputed over this many batches of the
    # training mix, so the stored statistics match the final weights (0 = keep the running EMA).
    "bn_recalibration_batches": 20,
}
TRAIN_LIMITS = {
    "source_epochs": (0.0, 10_000.0),
    "steps": (0, 10_000_000),
    "batch_size": (1, 65_536),
    "lr": (1e-12, 100.0),
    "eval_batch_size": (1, 65_536),
    "latency_repeats": (1, 100_000),
    "device_data_max_mb": (0.0, 1e9),
    "loader_workers": (0, 64),
    "selection_every": (1, 10_000_000),
    "bn_recalibration_batches": (0, 100_000),
}
# Train settings added after results were first stored: left out of the run id at their default,
# so earlier run ids (and resuming) stay valid.
# (bn_recalibration_batches is hashed: it changed every result, so earlier run ids must not match.)
HASH_SKIPS_DEFAULT = ("model_selection", "selection_every", "verify_with") + tuple(k for k in RECIPE_DEFAULTS if k != "lr")


def _hash_fields(fields: dict) -> dict:
    train = {k: v for k, v in fields.get("train", {}).items()
             if not (k in HASH_SKIPS_DEFAULT and v == TRAIN_DEFAULTS[k])}
    return {**fields, "train": train}


DEFAULT_RESULTS_DIR = "results/runs"



@dataclass(frozen=True)
class RunSpec:
    """One grid cell. ``run_id`` is a stable hash of everything that affects its result."""

    backbone: str
    source: str
    target: str
    strategy: str
    loss: str
    shots: int | str
    seed: int
    backbone_options: dict = field(default_factory=dict, hash=False)
    strategy_options: dict = field(default_factory=dict, hash=False)
    loss_options: dict = field(default_factory=dict, hash=False)
    train: dict = field(default_factory=dict, hash=False)
    dataset_options: dict = field(default_factory=dict, hash=False)  # dataset name -> options
    # domain-adaptation | task-transfer | pretrained (tlbench.grid.domains); derived from source
    # and target, so it stays out of the run id
    kind: str = field(default=DOMAIN_ADAPTATION, hash=False)
    # A search trial (tlbench.search.trials): index, sampler, seed, sampled params; empty otherwise
    trial: dict = field(default_factory=dict, hash=False)

    def as_dict(self) -> dict:
        return asdict(self)

    def options_of_dataset(self, name: str) -> dict:
        """The options of dataset ``name`` in this run (its defaults when it declares none)."""
        return dict(self.dataset_options.get(name, {}))

    @property
    def run_id(self) -> str:
        fields = _hash_fields(self.as_dict())
        del fields["kind"]
        if not fields["dataset_options"]:
            del fields["dataset_options"]  # run ids from before dataset options stay the same
        if not fields["trial"]:
            del fields["trial"]  # likewise for cells that are not search trials
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    @property
    def dirname(self) -> str:
        """A readable, filesystem-safe directory name that ends with the run id."""
        parts = [self.backbone, self.source, self.target, self.strategy, self.loss, f"shots{self.shots}", f"seed{self.seed}"]
        parts += [f"trial{self.trial['index']}"] if self.trial else []
        safe = "__".join(safe_name(p) for p in parts)
        return f"{safe}__{self.run_id}"

    def source_key(self) -> dict:
        """What determines the source model (cached and shared across the grid)."""
        keys = ("source_epochs", "batch_size", "lr", "bn_recalibration_batches")
        recipe = {k: self.train[k] for k in RECIPE_DEFAULTS if k != "lr" and self.train.get(k, RECIPE_DEFAULTS[k]) != RECIPE_DEFAULTS[k]}
        return {
            "backbone": self.backbone,
            "backbone_options": self.backbone_options,
            "source": self.source,
            "source_dataset_options": self.options_of_dataset(dataset_name(self.source) or ""),
            "target_input": dataset_name(self.target),
            "seed": self.seed,
            "train": {**{k: self.train[k] for k in keys}, **recipe},
        }
