"""Grid configuration -> validated list of RunSpec. All validation happens here, before training.

The same keys come from a TOML grid file and from command-line flags (flags win)::

    backbone = ["smallcnn"]          # --backbone smallcnn,resnet18
    source   = ["digits:mnist"]      # --source digits:mnist
    target   = ["digits:uci"]        # --target digits:uci
    strategy = ["finetune"]          # --strategy scratch,finetune
    loss     = ["none"]              # --loss none,dann
    shots    = [10]                  # --shots 1,10,all   (per class; 0 = unlabeled target)
    seeds    = [0]                   # --seeds 0,1
    results_dir = "results/runs"     # --results-dir DIR
    device   = "auto"                # --device cpu|cuda|cuda:1|auto
    executor = "local"               # --executor local|processes|ray  (tlbench/execution.py)
    workers  = 2                     # --workers N; devices = ["cuda:0", "cuda:1"]; ray_address = "auto"
    threads  = 1                     # --threads N  (torch CPU threads per task)
    [train]                          # --set train.steps=200
    [set.l2sp]                       # --set l2sp.alpha=0.01  (plugin hyperparameters)
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import tomllib
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

from tlbench.dataset_options import check_domain, resolve_dataset_options
from tlbench.errors import UserError, closest_first, unknown
from tlbench.registry import SINGULAR, Registry

LIST_KEYS = ("backbone", "source", "target", "strategy", "loss", "shots", "seeds")
SCALAR_KEYS = ("results_dir", "device", "data_root", "download", "executor", "workers", "devices", "ray_address", "threads")
TABLE_KEYS = ("train", "set")
KNOWN_KEYS = LIST_KEYS + SCALAR_KEYS + TABLE_KEYS
PLUGIN_KINDS = {"backbone": "backbones", "strategy": "strategies", "loss": "adaptation_losses", "dataset": "datasets"}

TRAIN_DEFAULTS = {
    "source_epochs": 3.0,
    "steps": 150,
    "batch_size": 64,
    "lr": 0.001,
    "eval_batch_size": 512,
    "latency_repeats": 30,
    "export_dynamo": True,
    "int8": True,  # also quantize every exported model to INT8 and measure it
    # Speed settings (tlbench/speed.py). AMP, channels_last, cudnn_benchmark and non_blocking act on CUDA only.
    "amp": True,
    "channels_last": True,
    "cudnn_benchmark": True,
    "non_blocking": True,
    "device_data_max_mb": 2048.0,  # larger datasets stay in host memory, fed by a DataLoader
    "loader_workers": 2,
    "pin_memory": True,
    # Which checkpoint is reported (tlbench/selection.py): last, source-val or target-oracle,
    # scored every `selection_every` steps when not `last`.
    "model_selection": "last",
    "selection_every": 25,
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
}
MODEL_SELECTIONS = ("last", "source-val", "target-oracle")
# Train settings added after results were first stored: left out of the run id at their default,
# so earlier run ids (and resuming) stay valid.
HASH_SKIPS_DEFAULT = ("model_selection", "selection_every")


def _hash_fields(fields: dict) -> dict:
    train = {k: v for k, v in fields.get("train", {}).items()
             if not (k in HASH_SKIPS_DEFAULT and v == TRAIN_DEFAULTS[k])}
    return {**fields, "train": train}
DEFAULT_RESULTS_DIR = "results/runs"
MAX_SHOTS = 1_000_000


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

    def as_dict(self) -> dict:
        return asdict(self)

    def options_of_dataset(self, name: str) -> dict:
        """The options of dataset ``name`` in this run (its defaults when it declares none)."""
        return dict(self.dataset_options.get(name, {}))

    @property
    def run_id(self) -> str:
        fields = _hash_fields(self.as_dict())
        if not fields["dataset_options"]:
            del fields["dataset_options"]  # run ids from before dataset options stay the same
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    @property
    def dirname(self) -> str:
        """A readable, filesystem-safe directory name that ends with the run id."""
        parts = [self.backbone, self.source, self.target, self.strategy, self.loss, f"shots{self.shots}", f"seed{self.seed}"]
        safe = "__".join(p.replace(":", "-").replace("/", "-") for p in parts)
        return f"{safe}__{self.run_id}"

    def source_key(self) -> dict:
        """What determines the source model (cached and shared across the grid)."""
        keys = ("source_epochs", "batch_size", "lr")
        return {
            "backbone": self.backbone,
            "backbone_options": self.backbone_options,
            "source": self.source,
            "source_dataset_options": self.options_of_dataset(self.source.split(":")[0]),
            "target_input": self.target.split(":")[0],
            "seed": self.seed,
            "train": {k: self.train[k] for k in keys},
        }


def default_grid_path() -> Path:
    """The built-in default grid shipped with tlbench."""
    return Path(str(resources.files("tlbench") / "default_grid.toml"))


def read_grid_file(path) -> dict:
    """Parse a TOML grid file; unreadable or malformed files are a one-line UserError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"grid file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read grid file {str(path)!r}: {exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"grid file {str(path)!r} is not valid TOML: {exc}") from None


def split_list(value: str) -> list[str]:
    """Split a comma-separated flag value; empty items are dropped."""
    return [item.strip() for item in value.split(",") if item.strip()]


def parse_set(assignments: list[str]) -> dict:
    """``["l2sp.alpha=0.01", "train.steps=50"]`` -> ``{"l2sp": {"alpha": 0.01}, "train": {...}}``."""
    out: dict = {}
    for item in assignments:
        key, sep, raw = item.partition("=")
        path = key.strip().split(".")
        if not sep or len(path) < 2 or not all(path):
            raise UserError(f"--set {item!r} must look like NAME.PARAM=VALUE (e.g. l2sp.alpha=0.01 or train.steps=100)")
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return out


def merge_config(file_config: dict, flag_config: dict) -> dict:
    """Flags override the grid file; ``train`` and ``set`` tables merge key by key."""
    merged = {k: v for k, v in file_config.items()}
    for key, value in flag_config.items():
        if value is None:
            continue
        if key in TABLE_KEYS and isinstance(merged.get(key), dict):
            base = {k: (dict(v) if isinstance(v, dict) else v) for k, v in merged[key].items()}
            for name, sub in value.items():
                if isinstance(sub, dict) and isinstance(base.get(name), dict):
                    base[name] = {**base[name], **sub}
                else:
                    base[name] = sub
            merged[key] = base
        else:
            merged[key] = value
    return merged


def _as_list(config: dict, key: str) -> list:
    value = config.get(key)
    if value is None:
        raise UserError(f"grid needs `{key}` (a list, or the --{key} flag)")
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list):
        raise UserError(f"grid key `{key}` must be a list, got {type(value).__name__}")
    if not value:
        raise UserError(f"grid key `{key}` is an empty list; give at least one value")
    return value


def _parse_shots(values: list) -> list:
    out = []
    for value in values:
        if isinstance(value, str) and value.strip().lower() == "all":
            out.append("all")
            continue
        try:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            shots = int(value)
        except (TypeError, ValueError):
            raise UserError(f"shots {value!r} is not a whole number or 'all' (e.g. --shots 0,10,all)") from None
        if not 0 <= shots <= MAX_SHOTS:
            raise UserError(f"shots {shots} is out of range; use 0..{MAX_SHOTS} per class, or 'all'")
        out.append(shots)
    return list(dict.fromkeys(out))


def _parse_seeds(values: list) -> list[int]:
    out = []
    for value in values:
        try:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            seed = int(value)
        except (TypeError, ValueError):
            raise UserError(f"seed {value!r} is not a whole number (e.g. --seeds 0,1,2)") from None
        if not 0 <= seed < 2**31:
            raise UserError(f"seed {seed} is out of range; use 0..{2**31 - 1}")
        out.append(seed)
    return list(dict.fromkeys(out))


def _check_value(what: str, key: str, value, default):
    """Type-check one option against its default's type; ints are accepted for floats."""
    if default is None:
        return value
    expected = type(default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if expected is bool and not isinstance(value, bool):
        raise UserError(f"{what} option `{key}` must be true or false, got {value!r}")
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise UserError(f"{what} option `{key}` must be {expected.__name__} (like {default!r}), got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise UserError(f"{what} option `{key}` must be finite, got {value!r}")
    return value


def resolve_options(what: str, defaults: dict, given: dict) -> dict:
    """Defaults overridden by ``given``; unknown keys and wrong types are UserErrors."""
    if not isinstance(given, dict):
        raise UserError(f"options for {what} must be a table of NAME = VALUE")
    out = dict(defaults)
    for key, value in given.items():
        if key not in defaults:
            known = ", ".join(closest_first(key, defaults)) or "(it takes none)"
            raise UserError(f"{what} has no option {key!r}; known: {known}")
        out[key] = _check_value(what, key, value, defaults[key])
    return out


def resolve_train(given: dict) -> dict:
    """Training settings with defaults, types and ranges checked."""
    train = resolve_options("train", TRAIN_DEFAULTS, given or {})
    for key, (low, high) in TRAIN_LIMITS.items():
        if not low <= train[key] <= high:
            raise UserError(f"train option `{key}` = {train[key]!r} is out of range; use {low}..{high}")
    if train["model_selection"] not in MODEL_SELECTIONS:
        raise UserError(f"train option `model_selection` = {train['model_selection']!r} is not one of {', '.join(MODEL_SELECTIONS)}")
    return train


def _plugin_options(registry: Registry, sets: dict, used: dict[str, list[str]]) -> dict[tuple[str, str], dict]:
    """Route ``[set.NAME]`` tables to the plugin called NAME (``[set.KIND.NAME]`` disambiguates)."""
    if not isinstance(sets, dict):
        raise UserError("`set` must be a table of plugin names, e.g. [set.l2sp] alpha = 0.01")
    routed: dict[tuple[str, str], dict] = {}
    all_names = {n for kind in PLUGIN_KINDS.values() for n in registry.names(kind)}
    for name, options in sets.items():
        if name in PLUGIN_KINDS and isinstance(options, dict) and all(isinstance(v, dict) for v in options.values()):
            for sub, sub_options in options.items():
                registry.get(PLUGIN_KINDS[name], sub)
                routed[(PLUGIN_KINDS[name], sub)] = sub_options
            continue
        kinds = [kind for kind in PLUGIN_KINDS.values() if name in registry.entries[kind]]
        if not kinds:
            raise unknown("plugin in `set`", name, all_names)
        if len(kinds) > 1:
            raise UserError(f"`set.{name}` is ambiguous ({', '.join(kinds)}); write set.<kind>.{name}")
        routed[(kinds[0], name)] = options
    return routed


def _split_domain(value, registry: Registry, role: str, data_opts=None, built=None) -> tuple[str, str]:
    if not isinstance(value, str) or value.count(":") != 1:
        raise UserError(f"{role} {value!r} must be DATASET:DOMAIN (e.g. digits:mnist)")
    dataset, domain = value.split(":")
    registry.get("datasets", dataset)
    options = (data_opts or {}).get(dataset, {})
    check_domain(registry, dataset, domain, options, {} if built is None else built)
    return dataset, domain


def expand(config: dict, registry: Registry) -> list[RunSpec]:
    """Validate a merged grid configuration and expand it into its Cartesian product of runs.

    Pairs whose source and target are the same domain are skipped.
    """
    unknown_keys = [k for k in config if k not in KNOWN_KEYS]
    if unknown_keys:
        raise unknown("grid key", unknown_keys[0], KNOWN_KEYS)
    lists = {key: _as_list(config, key) for key in LIST_KEYS}
    for key in ("backbone", "strategy", "loss", "source", "target"):
        for value in lists[key]:
            if not isinstance(value, str):
                raise UserError(f"grid key `{key}` must list names (strings), got {value!r}")
    shots = _parse_shots(lists["shots"])
    seeds = _parse_seeds(lists["seeds"])
    kinds = {"backbone": "backbones", "strategy": "strategies", "loss": "adaptation_losses"}
    for key, kind in kinds.items():
        for name in lists[key]:
            registry.get(kind, name)
    train = resolve_train(config.get("train") or {})
    routed = _plugin_options(registry, config.get("set") or {}, lists)
    options = {}
    for (kind, name), given in routed.items():
        if kind == "datasets":
            continue
        entry = registry.get(kind, name)
        options[(kind, name)] = resolve_options(f"{SINGULAR[kind]} {name!r}", entry.defaults, given)
        check = entry.meta.get("check_options") if kind != "backbones" else None
        if callable(check):  # value checks beyond types (backbones are checked below, defaults included)
            check(options[(kind, name)])
    data_names = [v.split(":")[0] for v in lists["source"] + lists["target"] if v.count(":") == 1]
    data_names += [name for kind, name in routed if kind == "datasets"]
    data_opts = {n: resolve_dataset_options(registry, n, config, routed.get(("datasets", n))) for n in dict.fromkeys(data_names)}
    built_datasets: dict = {}

    def opts(kind, name):
        return options.get((kind, name)) or dict(registry.get(kind, name).defaults)

    pairs = []
    for source in dict.fromkeys(lists["source"]):
        for target in dict.fromkeys(lists["target"]):
            if source == target:
                continue
            src_ds, _ = _split_domain(source, registry, "source", data_opts, built_datasets)
            tgt_ds, _ = _split_domain(target, registry, "target", data_opts, built_datasets)
            _check_label_space(registry, src_ds, tgt_ds, source, target)
            pairs.append((source, target))
    if not pairs:
        raise UserError("no source->target pair: every source equals its target; give different domains")
    for backbone in lists["backbone"]:
        entry = registry.get("backbones", backbone)
        for _, target in pairs:
            dataset = registry.get("datasets", target.split(":")[0])
            b_mod, d_mod = entry.meta.get("modality"), dataset.meta.get("modality")
            if b_mod and d_mod and b_mod != d_mod:
                fitting = [n for n in registry.names("backbones") if registry.entries["backbones"][n].meta.get("modality") == d_mod]
                raise UserError(
                    f"backbone {backbone!r} takes {b_mod} input but {target} is {d_mod} data; "
                    f"{d_mod} backbones: {', '.join(fitting) or '(none)'}"
                )
    for backbone in dict.fromkeys(lists["backbone"]):
        check = registry.get("backbones", backbone).meta.get("check_options")
        if callable(check):
            check(opts("backbones", backbone))
    specs = []
    for backbone, (source, target), strategy, loss, shot, seed in itertools.product(
        dict.fromkeys(lists["backbone"]), pairs, dict.fromkeys(lists["strategy"]), dict.fromkeys(lists["loss"]), shots, seeds
    ):
        specs.append(
            RunSpec(
                backbone, source, target, strategy, loss, shot, seed,
                opts("backbones", backbone), opts("strategies", strategy), opts("adaptation_losses", loss), train,
                {n: data_opts[n] for n in dict.fromkeys(p.split(":")[0] for p in (source, target)) if data_opts[n]},
            )
        )
    return specs


def _check_label_space(registry: Registry, src_ds: str, tgt_ds: str, source: str, target: str) -> None:
    if src_ds == tgt_ds:
        return
    src_meta, tgt_meta = registry.get("datasets", src_ds).meta, registry.get("datasets", tgt_ds).meta
    src_classes = src_meta.get("classes") or src_meta.get("num_classes")
    tgt_classes = tgt_meta.get("classes") or tgt_meta.get("num_classes")
    label_space = src_meta.get("label_space"), tgt_meta.get("label_space")
    if label_space[0] and label_space[0] == label_space[1] and src_classes == tgt_classes:
        return
    raise UserError(
        f"{source} and {target} do not share a label space ({src_ds}: {src_classes} classes, "
        f"{tgt_ds}: {tgt_classes}); pick domains of one dataset, or datasets declaring the same label_space"
    )
