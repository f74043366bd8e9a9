"""RunSpec: one validated grid cell, its settings' defaults and its stable run id."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from tlbench.grid.domains import DOMAIN_ADAPTATION, dataset_name, dataset_names, safe_name
from tlbench.settings import TrainSettings, legacy_run_id_view, run_id_view, source_view

LIST_KEYS = ("backbone", "source", "target", "strategy", "loss", "shots", "seeds")
# where grid tasks run: validated into tlbench.execution.contract.ExecutorSettings (its fields)
EXECUTOR_KEYS = ("executor", "workers", "devices", "ray_address", "threads")
SCALAR_KEYS = ("results_dir", "device", "data_root", "download", "leave_one_out") + EXECUTOR_KEYS
TABLE_KEYS = ("train", "set", "search")  # [search]: tlbench.search.trials
KNOWN_KEYS = LIST_KEYS + SCALAR_KEYS + TABLE_KEYS
PLUGIN_KINDS = {"backbone": "backbones", "strategy": "strategies", "loss": "adaptation_losses", "dataset": "datasets"}

# dataset options that only say where missing data is fetched from: never part of a run id or a cache key
FETCH_KEYS = ("download", "download_url")

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
    train: TrainSettings = field(default_factory=TrainSettings, hash=False)
    dataset_options: dict = field(default_factory=dict, hash=False)  # dataset name -> options
    # domain-adaptation | domain-generalisation | task-transfer | pretrained (tlbench.grid.domains);
    # derived from source, target, shots and train.target_inputs, so it stays out of the run id
    kind: str = field(default=DOMAIN_ADAPTATION, hash=False)
    # A search trial (tlbench.search.trials): index, sampler, seed, sampled params; empty otherwise
    trial: dict = field(default_factory=dict, hash=False)

    def __post_init__(self):
        if isinstance(self.train, dict):  # a caller's table: validated into the typed object, unknown keys refused
            object.__setattr__(self, "train", TrainSettings.from_dict(self.train))
        elif not isinstance(self.train, TrainSettings):
            raise TypeError(f"RunSpec.train must be TrainSettings or a dict, not {type(self.train).__name__}")

    @classmethod
    def from_record(cls, record: dict) -> "RunSpec":
        """The spec a stored result (or its ``spec`` part) describes; keys this version does not
        know (the record's own measurements, settings since removed) are ignored."""
        known = {f for f in cls.__dataclass_fields__}
        fields = {k: v for k, v in record.items() if k in known}
        if isinstance(fields.get("train"), dict):
            fields["train"] = TrainSettings.from_record(fields["train"])
        return cls(**fields)

    def as_dict(self) -> dict:
        return asdict(self)

    def _identity_options(self) -> dict:
        """``dataset_options`` without the fetch keys (where data comes from is not what it is)."""
        return {name: {k: v for k, v in options.items() if k not in FETCH_KEYS}
                for name, options in self.dataset_options.items()}

    def options_of_dataset(self, name: str) -> dict:
        """The options of dataset ``name`` in this run (its defaults when it declares none)."""
        return dict(self.dataset_options.get(name, {}))

    @property
    def run_id(self) -> str:
        return self._hash(run_id_view(self.train))

    @property
    def accepted_ids(self) -> tuple[str, ...]:
        """Ids a stored result of this cell may carry, today's first: results written before speed
        knobs left the id (they hashed e.g. ``latency_repeats`` at its value) resume too."""
        legacy = self._hash(legacy_run_id_view(self.train))
        return (self.run_id,) if legacy == self.run_id else (self.run_id, legacy)

    def _hash(self, train_view: dict) -> str:
        fields = {**self.as_dict(), "train": train_view, "dataset_options": self._identity_options()}
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
        return self.stored_dirnames[0]

    @property
    def stored_dirnames(self) -> tuple[str, ...]:
        """Where a stored result of this cell may live: ``dirname`` first, then one directory per
        earlier id it may carry (see ``accepted_ids``)."""
        parts = [self.backbone, self.source, self.target, self.strategy, self.loss, f"shots{self.shots}", f"seed{self.seed}"]
        parts += [f"trial{self.trial['index']}"] if self.trial else []
        safe = "__".join(safe_name(p) for p in parts)
        return tuple(f"{safe}__{run_id}" for run_id in self.accepted_ids)

    def source_key(self) -> dict:
        """What determines the source model (cached and shared across the grid): for several
        source domains, their set (the source string is canonical: sorted) and every one of
        their datasets' options."""
        options = self._identity_options()
        names = dataset_names(self.source)
        return {
            "backbone": self.backbone,
            "backbone_options": self.backbone_options,
            "source": self.source,
            "source_dataset_options": (options.get(dataset_name(self.source) or "", {}) if len(names) <= 1
                                       else {name: options.get(name, {}) for name in names}),
            "target_input": dataset_name(self.target),
            "seed": self.seed,
            "train": source_view(self.train),
        }
