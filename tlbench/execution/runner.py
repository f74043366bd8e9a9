"""Runs a grid: source pretraining (cached) -> transfer -> evaluate -> export -> verify -> record."""

from __future__ import annotations

import datetime as dt
import traceback
from pathlib import Path

import torch

from tlbench.execution import source_cache as cache
from tlbench.execution import claims
from tlbench.plugin.contracts import TransferContext
from tlbench.execution.cell_data import (
    DomainCache, calibration_inputs, empty_like, source_domain_sizes, source_is_data, target_inputs_seen, withheld_inputs,
)
from tlbench.grid.domains import dataset_name, source_parts
from tlbench.execution.sources import combined_fingerprint, join_sources
from tlbench.training.decode_cache import DecodeCache
from tlbench.training.presets import training_view
from tlbench.training.streaming import LazyRows, stream
from tlbench.training.data import adapt_inputs, adapted_preprocessing, backbone_input_shape, few_shot
from tlbench.utils.environment import device_name, versions
from tlbench.utils.seeds import TARGET_INIT_OFFSET, Salt, seeded_generator
from tlbench.grid import RunSpec
from tlbench.training.model import build_model
from tlbench.plugin.registry import Registry
from tlbench.training.selection import holdout
from tlbench.grid.identity import needs_source_holdout, source_model_identity
from tlbench.search.scoring import checkpoint_selector, score_validators
from tlbench.execution.results import MODEL_FILE, RESULT_FILE, SCHEMA_VERSION, artifact_digests, describe_failure, remove_stale_temps, write_json_atomic
from tlbench.execution.deployment import deploy_cell
from tlbench.training.speed import HostTensor, SpeedSettings, resolve_speed
from tlbench.execution.evaluation import eval_rows, evaluate_cell
from tlbench.execution.predictions import record_predictions
from tlbench.execution.audit import audit_record
from tlbench.training.loop import pretrain_source, transfer
from tlbench.training.optim import recipe_of, transfer_recipe
from tlbench.transferability.cell import cell_transferability
from tlbench.training.convergence import has_flattened, supervised_trace


def onnx_metadata(spec: RunSpec, dataset, shape, versions_: dict) -> dict:
    """What an exported model carries for `tlbench predict`: labels, preprocessing, spec, versions."""
    return {
        "tlbench.labels": list(dataset.classes),
        "tlbench.preprocessing": adapted_preprocessing(dataset.preprocessing, shape).as_dict(),
        "tlbench.run_spec": {"run_id": spec.run_id, **spec.as_dict()},
        "tlbench.versions": versions_,
    }


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class Runner:
    """Executes RunSpecs against a registry, writing one result directory per run."""

    def __init__(self, registry: Registry, results_dir, device: str = "cpu", log=print):
        self.registry = registry
        self.results_dir = Path(results_dir)
        self.device = device
        self.log = log
        self._data = DomainCache(registry)
        self._decode_caches: dict[tuple, DecodeCache] = {}
        self._versions = versions()

    # -- data ---------------------------------------------------------------------------------
    def dataset(self, name: str, options: dict | None = None):
        """The dataset ``name`` built with ``options``, once per process."""
        return self._data.dataset(name, options)

    def domain(self, value: str, options: dict | None = None):
        """(TaskView, DomainData) of ``dataset:domain[subset]``, loaded once per process."""
        return self._data.domain(value, options)

    def inputs(self, spec: RunSpec, speed: SpeedSettings | None = None):
        """(backbone entry, target TaskView, input shape, device data) of ``spec``'s cell, also
        for ``tlbench export``. A pretrained source has no source data: its splits are empty;
        ``data["source_classes"]`` is None then."""
        backbone = self.registry.get("backbones", spec.backbone)
        tgt_ds, tgt = self.domain(spec.target, spec.options_of_dataset(dataset_name(spec.target)))
        sources = ([(part, *self.domain(part, spec.options_of_dataset(dataset_name(part)))) for part in source_parts(spec.source)]
                   if source_is_data(spec) else [])
        shape = backbone_input_shape(tgt_ds.preprocessing, backbone.meta, spec.backbone_options)

        speed = speed or SpeedSettings(self.device)

        def fit(split, pre, label):
            if isinstance(split.x, LazyRows):  # read batch by batch (decode cache), never whole
                x = stream(split.x, pre, shape, self.device, self._decode_cache(spec.train), label)
                return type(split)(x, split.y.to(self.device))
            x = adapt_inputs(split.x, pre, shape)
            # too large for the device: stays in (pinned) host memory, see tlbench.training.speed
            x = x.to(self.device) if speed.keep_on_device(x) else HostTensor(x, self.device, speed.pin_memory, speed.non_blocking)
            return type(split)(x, split.y.to(self.device))

        data = {"target_train": fit(tgt.train, tgt_ds.preprocessing, f"{spec.target} train"),
                "target_test": fit(tgt.test, tgt_ds.preprocessing, f"{spec.target} test")}
        if not sources:
            data["source_train"] = data["source_test"] = empty_like(data["target_train"])
        else:  # one split of every source domain's rows, each row with its domain (tlbench.execution.sources)
            for role in ("train", "test"):
                data[f"source_{role}"] = join_sources([fit(getattr(src, role), src_ds.preprocessing, f"{part} {role}")
                                                      for part, src_ds, src in sources])
        src_ds = sources[0][1] if sources else None
        data["source_classes"] = None if src_ds is None else src_ds.classes
        data["source_preprocessing"] = None if src_ds is None else src_ds.preprocessing
        data["source_domains"] = tuple(part for part, _, _ in sources)
        return backbone, tgt_ds, shape, data

    def fingerprints(self, spec: RunSpec) -> dict[str, str | None]:
        """The data fingerprints of ``spec``'s four splits (None for a pretrained source's; for
        several source domains, one digest of theirs in order)."""
        target = self._data.fingerprints(spec.target, spec.options_of_dataset(dataset_name(spec.target)))
        if not source_is_data(spec):
            source = {"train": None, "test": None}
        else:
            parts = [self._data.fingerprints(part, spec.options_of_dataset(dataset_name(part))) for part in source_parts(spec.source)]
            source = parts[0] if len(parts) == 1 else {role: combined_fingerprint([p[role] for p in parts]) for role in ("train", "test")}
        return {"source_train": source["train"], "source_test": source["test"],
                "target_train": target["train"], "target_test": target["test"]}

    def _decode_cache(self, train) -> DecodeCache:
        """The decode cache ``train`` names (one object per folder, so digests are checked once)."""
        key = (train.decode_cache_dir, train.decode_cache_max_gb, train.loader_workers)
        if key not in self._decode_caches:
            self._decode_caches[key] = DecodeCache(train.decode_cache_dir or None, train.decode_cache_max_gb * 1e9,
                                                   train.loader_workers, self.log)
        return self._decode_caches[key]

    # -- source model -------------------------------------------------------------------------
    def source_state(self, spec: RunSpec, backbone, shape, num_classes, source_train, speed=None,
                     preprocessing=None) -> tuple[dict, dict]:
        """The trained source model's state dict, from the cache or trained now (and cached); for
        a pretrained source, the backbone's own weights (nothing trained, nothing cached)."""
        if not source_is_data(spec):
            torch.manual_seed(spec.seed)
            model = build_model(backbone, shape, num_classes, spec.backbone_options)
            return ({k: v for k, v in model.state_dict().items() if not k.startswith("head.")},
                    {"source_cached": False, "source_train_seconds": 0.0,
                     "source_weights": getattr(model.backbone, "weights_info", None)})
        path = cache.cache_path(self.results_dir, source_model_identity(spec, self.registry, shape))
        lock = claims.wait_claim(cache.lock_path(path))  # one process trains it; the others wait, then load it
        remove_stale_temps(path.parent, path.name)
        try:
            return self._source_state_at(path, spec, backbone, shape, num_classes, source_train, speed, preprocessing)
        finally:
            lock.release(remove=False)

    def _source_state_at(self, path, spec, backbone, shape, num_classes, source_train, speed, preprocessing) -> tuple[dict, dict]:
        state = cache.load_state(path)
        if state is not None:
            return state, {"source_cached": True, "source_train_seconds": 0.0}
        torch.manual_seed(spec.seed)
        model = build_model(backbone, shape, num_classes, spec.backbone_options).to(self.device)
        if speed is not None:
            model = speed.prepare_model(model, len(shape) + 1)
        train = spec.train
        stats = pretrain_source(
            model, source_train, train.source_epochs, train.batch_size, train.lr, seeded_generator(spec.seed, Salt.SOURCE_TRAINING),
            speed=speed, recipe=recipe_of(train), bn_batches=train.bn_recalibration_batches,
            train_view=training_view(train.augment, preprocessing, seeded_generator(spec.seed, Salt.TRAIN_VIEW)),
        )
        state = model.state_dict()
        cache.save_state(path, state)
        self.log(f"trained source model {spec.backbone} on {spec.source} (seed {spec.seed}) in {stats.seconds:.1f}s")
        return {k: v.detach().cpu() for k, v in state.items()}, {
            "source_cached": False,
            "source_train_seconds": round(stats.seconds, 4),
        }

    def _prepared(self, spec: RunSpec):
        """Speed settings, backbone, target dataset, input shape, device data and the source
        validation slice (None unless a validator reading source data needs it) for one cell."""
        speed = resolve_speed(spec.train, self.device)
        speed.configure_backends()
        backbone, tgt_ds, shape, data = self.inputs(spec, speed)
        source_val = None
        if needs_source_holdout(spec, self.registry):
            data["source_train"], source_val = holdout(data["source_train"], seeded_generator(spec.seed, Salt.SOURCE_HOLDOUT))
        return speed, backbone, tgt_ds, shape, data, source_val

    def cell_inputs(self, spec: RunSpec):
        """(speed, backbone, target dataset, input shape, device data, source-val slice): what the
        cell of ``spec`` starts from, for callers outside the runner such as ``tlbench rank``."""
        return self._prepared(spec)

    def prepare_source(self, spec: RunSpec) -> dict:
        """Train (or find cached) the source model ``spec`` needs: the first phase of a grid, so
        each source model is trained once and shared."""
        speed, backbone, tgt_ds, shape, data, _ = self._prepared(spec)
        if not source_is_data(spec):
            return {"source_cached": False, "source_train_seconds": 0.0}
        _, info = self.source_state(spec, backbone, shape, len(data["source_classes"]), data["source_train"], speed,
                                    data["source_preprocessing"])
        return info

    # -- one cell -----------------------------------------------------------------------------
    def run_dir(self, spec: RunSpec) -> Path:
        return self.results_dir / spec.dirname

    def run(self, spec: RunSpec) -> dict:
        """Run one cell; any exception is recorded as a failed result, never raised."""
        record = self._base_record(spec)
        run_dir = self.run_dir(spec)
        run_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(run_dir)  # left by a process killed mid-write; this cell is ours now
        try:
            record.update(self._run(spec, run_dir))
            record["status"] = "ok"
            record["artifacts"] = artifact_digests(run_dir)  # verified before a rerun skips this cell
        except KeyboardInterrupt:
            record.update(status="interrupted", error="interrupted by the user", finished_at=_now())
            write_json_atomic(run_dir / RESULT_FILE, record)
            raise
        except Exception as exc:
            record.update(status="failed", error=describe_failure(exc, run_dir))  # a full disk is said as such
            (run_dir / "error.log").write_text(traceback.format_exc(), encoding="utf-8")
        record["finished_at"] = _now()
        write_json_atomic(run_dir / RESULT_FILE, record)
        return record

    def _base_record(self, spec: RunSpec) -> dict:
        provenance = {}
        for kind, name in (
            ("backbones", spec.backbone),
            ("datasets", dataset_name(spec.target)),
            ("strategies", spec.strategy),
            ("adaptation_losses", spec.loss),
        ):
            entry = self.registry.entries[kind].get(name)
            if entry:
                provenance[kind] = entry.as_dict()
        return {
            "schema_version": SCHEMA_VERSION,
            "run_id": spec.run_id,
            **{k: v for k, v in spec.as_dict().items()},
            "status": "running",
            "error": None,
            "device": self.device,
            "device_name": device_name(self.device),
            "versions": self._versions,
            "provenance": provenance,
            "started_at": _now(),
        }

    def _run(self, spec: RunSpec, run_dir: Path) -> dict:
        speed, backbone, tgt_ds, shape, data, source_val = self._prepared(spec)
        num_classes = len(tgt_ds.classes)
        source_classes = data["source_classes"]
        differ = source_classes is None or tuple(source_classes) != tuple(tgt_ds.classes)
        source_state, source_info = self.source_state(
            spec, backbone, shape, len(source_classes or tgt_ds.classes), data["source_train"], speed,
            data["source_preprocessing"])
        strategy = self.registry.get("strategies", spec.strategy).obj(**spec.strategy_options)
        loss = self.registry.get("adaptation_losses", spec.loss).obj(**spec.loss_options)

        torch.manual_seed(spec.seed + TARGET_INIT_OFFSET)
        model = build_model(backbone, shape, num_classes, spec.backbone_options)
        weights_info = getattr(model.backbone, "weights_info", None)  # which initial weights, if it says
        if strategy.init_from_source and differ:  # task transfer: the source backbone, a fresh target head
            model.load_state_dict({k: v for k, v in source_state.items() if not k.startswith("head.")}, strict=False)
        elif strategy.init_from_source:
            model.load_state_dict(source_state)
        model = speed.prepare_model(model.to(self.device), len(shape) + 1)
        generator = seeded_generator(spec.seed, Salt.TRANSFER)
        train = spec.train
        target_x = target_inputs_seen(spec, data)  # None: withheld (domain generalisation)
        recipe = transfer_recipe(train, spec.loss_options)  # [train], overridden by the loss's own recipe keys
        recipe.update(spec.trial.get("train", {}))  # a search trial's sampled [train] keys, for the transfer only
        augment_gen = seeded_generator(spec.seed, Salt.AUGMENT)
        ctx = TransferContext(
            source_state={k: v.to(self.device) for k, v in source_state.items()},
            source_train=data["source_train"],
            target_labeled=few_shot(data["target_train"], spec.shots, generator),
            target_unlabeled=data["target_train"].x if target_x is not None else withheld_inputs(shape, self.device),
            num_classes=num_classes,
            shots=spec.shots,
            steps=train.steps,
            lr=recipe["lr"],  # the rate strategies build their parameter groups from
            batch_size=train.batch_size,
            device=torch.device(self.device),
            generator=generator,
            augment=lambda x: tgt_ds.augment(x, augment_gen),
            train_view=training_view(train.augment, tgt_ds.preprocessing, seeded_generator(spec.seed, Salt.TRAIN_VIEW)),
            log=self.log,
            extra={"speed": speed},
            recipe=recipe,
            bn_batches=train.bn_recalibration_batches,
            label_spaces_differ=differ,
            source_num_classes=len(source_classes) if source_classes is not None else None,
            source_domains=data["source_domains"],
        )
        transferability = cell_transferability(  # the source model scored on ctx's shots; never raises
            self, spec, backbone, shape, source_state, len(source_classes or tgt_ds.classes), ctx.target_labeled)
        loss.setup(model.backbone.out_features, num_classes, ctx)
        selector = checkpoint_selector(spec, self.registry, source_val, target_x, data["target_test"])
        stats = transfer(model, strategy, loss, ctx, selector=selector)
        cache.save_state(run_dir / MODEL_FILE, model.state_dict())  # for `tlbench export RUN_DIR`

        target_test, source_test = data["target_test"], data["source_test"]
        batch = eval_rows(train.eval_batch_size, self.device)  # rows per eval-mode pass
        evaluated, target_logits, source_logits = evaluate_cell(  # accuracies; the target logits: deployment's reference
            model, target_test, source_test, stats.bn_inputs, differ, train.eval_batch_size, self.device, spec.seed)
        evaluated.update(record_predictions(run_dir, target_test, target_logits, source_test, source_logits))
        result = {
            **source_info,
            "backbone_weights": weights_info,
            "input_shape": list(shape),
            "speed": speed.as_dict(),
            "target_labeled_examples": 0 if ctx.target_labeled is None else len(ctx.target_labeled),
            "transfer_kind": spec.kind,
            "target_classes": list(tgt_ds.classes),
            "source_classes": None if source_classes is None else list(source_classes),
            **evaluated,
            "bn_inputs": stats.bn_inputs,
            "transfer_recipe": ctx.recipe,
            "lr_groups": stats.lr_groups,
            "loss_trace": stats.loss_trace,
            "term_trace": stats.term_trace,
            "training_flattened": has_flattened(supervised_trace(stats.term_trace, stats.loss_trace)),
            "bn_recalibration": stats.bn_recalibration,
            "train_seconds": round(stats.seconds, 4),
            "train_samples_per_s": round(stats.samples_per_s, 1),
            "train_phases": stats.phases,
            "strategy_summary": strategy.summary(),
            "final_loss_terms": stats.last_terms,
            "transferability": transferability,
            "audit": audit_record(self.fingerprints(spec)),
            "model_selection": spec.train.model_selection,
            **(selector.as_dict() if selector is not None else {}),
            "source_domains": source_domain_sizes(data),
            **score_validators(self.registry, model, source_val, target_x, target_test, batch, spec.seed),
        }
        result.update(
            self._latency_and_export(spec, model, tgt_ds, shape, target_test, run_dir, calibration=calibration_inputs(spec, data),
                                     reference=target_logits)
        )
        return result

    def export_metadata(self, spec: RunSpec, dataset, shape) -> dict:
        """The metadata an exported model of ``spec`` carries, with this process's versions."""
        return onnx_metadata(spec, dataset, shape, self._versions)

    def _latency_and_export(self, spec, model, dataset, shape, test, run_dir: Path, calibration=None, reference=None) -> dict:
        metadata = self.export_metadata(spec, dataset, shape)
        return deploy_cell(spec, model, dataset, shape, test, run_dir, self.device, metadata, calibration, reference)
