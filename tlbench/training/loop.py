"""The one training loop, used for source pretraining and for every transfer."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from tlbench.plugin.contracts import AdaptationBatch, AdaptationLoss, Phase, Split, Strategy, TransferContext
from tlbench.training.data import DomainSampler, Sampler
from tlbench.training.speed import HostTensor, loader_batches
from tlbench.training.batchnorm import batchnorm_layers, recalibrate
from tlbench.training.inference import map_batches
from tlbench.training.model import TransferModel, freeze_untrained
from tlbench.training.optim import make_optimizer, make_scheduler, recipe_of, transfer_recipe
from tlbench.settings.train import EVAL_BATCH_SIZE


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class TrainStats:
    """What a training run cost: wall time, examples seen, steps per phase, final loss terms."""

    seconds: float = 0.0
    samples: int = 0
    phases: list[dict] = field(default_factory=list)
    last_terms: dict[str, float] = field(default_factory=dict)
    lr_groups: list[dict] = field(default_factory=list)  # each phase's optimizer groups' declared rates
    # [step, mean total loss over the steps since the previous point] at ~20 points, and the same
    # window means per loss term (source_ce, target_ce, adaptation, ...): single batches are too noisy
    # to tell whether training has flattened.
    loss_trace: list = field(default_factory=list)
    term_trace: dict[str, list] = field(default_factory=dict)
    bn_recalibration: dict | None = None
    # which inputs the stored BatchNorm statistics describe: "source", "target_labeled", "target_unlabeled"
    bn_inputs: list[str] = field(default_factory=lambda: ["source"])

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else 0.0


class _TraceWindow:
    """Sums each loss term over the steps since the last trace point (kept on the device until
    recorded, so no per-step host synchronisation)."""

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.steps = 0

    def add(self, terms: dict[str, torch.Tensor]) -> None:
        for key, value in terms.items():
            value = value.detach().float()
            self.sums[key] = self.sums[key] + value if key in self.sums else value
        self.steps += 1

    def record(self, step: int, stats: TrainStats) -> None:
        if not self.steps:
            return
        means = {k: float(v) / self.steps for k, v in self.sums.items()}
        stats.loss_trace.append([step, round(sum(means.values()), 5)])
        for key, value in means.items():
            stats.term_trace.setdefault(key, []).append([step, round(value, 5)])
        self.sums, self.steps = {}, 0


def synchronize(device) -> None:
    """Wait for queued GPU work so wall-clock timings are honest."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


# An objective computes the loss terms of one step and the number of examples it used.
Objective = Callable[[float], tuple[dict[str, torch.Tensor], int]]


def _head_lr(model: nn.Module, groups: list[dict], fallback: float) -> float:
    """The rate of the group holding the model's head (its classifier), else ``fallback``."""
    head = getattr(model, "head", None)
    head_ids = {id(p) for p in head.parameters()} if isinstance(head, nn.Module) else set()
    for group in groups:
        if any(id(p) in head_ids for p in group["params"]):
            return group["lr"]
    return fallback


def _extra_groups(model, groups: list[dict], extra_params, recipe: dict) -> list[dict]:
    """Optimizer groups for modules a loss or strategy owns: each at ``recipe lr x lr_scale``
    when it declares one, otherwise at the head's rate; never at whichever group came first."""
    out = []
    head_lr = _head_lr(model, groups, recipe["lr"])
    for extra in extra_params:
        params = [p for p in extra["params"] if p.requires_grad]
        if params:
            scale = extra.get("lr_scale")
            out.append({"params": params, "lr": head_lr if scale is None else recipe["lr"] * scale, "name": extra.get("name", "extra")})
    return out


def fit(model: nn.Module, phases: list[Phase], objective: Objective, extra_params=(), log=None, speed=None,
        selector=None, recipe: dict | None = None, bn_batches: Callable[[], list] | None = None) -> TrainStats:
    """Run ``phases`` in order with the ``recipe``'s optimizer and schedule (tlbench.training.optim).

    Only each phase's parameter groups train, each at its declared rate times the schedule's
    common factor; ``extra_params`` (``{"params", "lr_scale", "name"}`` for a loss's discriminator
    or a strategy's extra module) train throughout at ``recipe lr x lr_scale``, or the head's rate
    when ``lr_scale`` is None. A ``selector`` (tlbench.training.selection) scores checkpoints and
    restores the best one; its scoring time is not counted as training time. ``bn_batches`` gives
    input batches of the training mix over which BatchNorm statistics are recomputed at the end
    (tlbench.training.batchnorm), so the stored statistics match the final weights.
    """
    recipe = recipe_of(recipe or {})
    stats = TrainStats()
    extra_params = [e if isinstance(e, dict) else {"params": [e]} for e in extra_params]
    total_steps = max(1, sum(p.steps for p in phases))
    done = 0
    device = next(model.parameters()).device
    scaler = speed.grad_scaler() if speed is not None else None
    synchronize(device)
    start = time.perf_counter()
    window = _TraceWindow()
    for phase in phases:
        trainable = {id(p) for group in phase.param_groups for p in group["params"]}
        for p in model.parameters():
            p.requires_grad_(id(p) in trainable)
        freeze_untrained(model)
        groups = [dict(g) for g in phase.param_groups if g["params"]]
        groups += _extra_groups(model, groups, extra_params, recipe)
        optimizer = make_optimizer(groups, recipe) if groups else None
        scheduler = make_scheduler(optimizer, recipe, done, total_steps) if optimizer is not None else None
        if optimizer is not None:
            stats.lr_groups.append({"phase": phase.name, "lrs": [round(g["initial_lr"], 10) for g in optimizer.param_groups]})
        phase_start, steps_run = time.perf_counter(), 0
        selecting_before = selector.seconds if selector is not None else 0.0
        for _ in range(phase.steps):
            if speed is None:
                terms, used = objective(done / total_steps)
            else:  # AMP on CUDA (tlbench.training.speed); a no-op context otherwise
                with speed.autocast():
                    terms, used = objective(done / total_steps)
            if not terms or optimizer is None:
                break
            loss = sum(terms.values())
            if not torch.isfinite(loss):
                bad = [f"{k}={float(v.detach().sum())}" for k, v in terms.items() if not torch.isfinite(v.detach()).all()]
                raise NonFiniteLoss(f"loss is {loss.item()} at step {done} in phase {phase.name!r}: non-finite term "
                                    f"{', '.join(bad) or '(none alone; their sum overflows)'} (terms: {', '.join(terms)})")
            optimizer.zero_grad(set_to_none=True)
            if scaler is None:
                loss.backward()
                optimizer.step()
            else:  # fp16 AMP
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            scheduler.step()
            stats.samples += used
            done += 1
            steps_run += 1
            stats.last_terms = {k: float(v.detach()) for k, v in terms.items()}
            window.add(terms)
            if done % max(1, total_steps // 20) == 0 or done == total_steps:
                window.record(done, stats)
            if selector is not None:
                selector.after_step(model, done)
        synchronize(device)
        phase_seconds = time.perf_counter() - phase_start
        if selector is not None:
            phase_seconds -= selector.seconds - selecting_before
        stats.phases.append({"name": phase.name, "steps": steps_run, "seconds": round(phase_seconds, 4)})
        if log:
            log(f"phase {phase.name}: {steps_run} steps in {phase_seconds:.2f}s")
    if selector is not None:
        selector.finish(model, done)
    if bn_batches is not None:
        layers = batchnorm_layers(model)  # those the last phase trained; frozen ones stay bit-identical
        bn_start = time.perf_counter()
        seen = recalibrate(model, layers, bn_batches(), autocast=speed.autocast if speed is not None else None)
        synchronize(device)
        stats.bn_recalibration = {"layers": len(layers), "examples": seen,
                                  "seconds": round(time.perf_counter() - bn_start, 4)}
    for p in model.parameters():
        p.requires_grad_(True)
    model.eval()
    stats.seconds = time.perf_counter() - start - (selector.seconds if selector is not None else 0.0)
    return stats


def draw(x, index, view=None) -> torch.Tensor:
    """Rows ``index`` of ``x``, through the training ``view`` when there is one: on uint8 pixels
    for streamed data (before normalisation), on the normalised batch otherwise."""
    if view is None:
        return x[index]
    if hasattr(x, "read_view"):
        return x.read_view(index, view)
    return view(x[index])


def pretrain_source(model: TransferModel, train: Split, epochs: float, batch_size: int, lr: float, generator, speed=None,
                    recipe: dict | None = None, bn_batches: int = 0, train_view=None) -> TrainStats:
    """Supervised training of backbone + head on the labeled source domain with ``recipe``
    (its ``lr`` replaced by ``lr``); a host-resident (large) dataset is streamed through a
    DataLoader (see tlbench.training.speed). ``bn_batches`` source batches recalibrate BatchNorm.
    ``train_view`` (tlbench.training.presets) augments each training batch, not the recalibration ones."""
    steps = math.ceil(epochs * len(train) / batch_size)
    if speed is not None and isinstance(train.x, HostTensor):
        batches = loader_batches(train.x, train.y, batch_size, generator, speed)

        def next_batch(view=None):
            xb, yb = next(batches)
            return (xb if view is None else view(xb)), yb
    else:
        sampler = Sampler(len(train), batch_size, generator)

        def next_batch(view=None):
            index = sampler.next_index().to(train.x.device)
            return draw(train.x, index, view), train.y[index]

    def objective(progress):
        xb, yb = next_batch(train_view)
        return {"source_ce": F.cross_entropy(model(xb), yb)}, len(yb)

    phase = Phase("source", [{"params": list(model.parameters()), "lr": lr}], steps)
    recalibration = (lambda: [next_batch()[0] for _ in range(bn_batches)]) if bn_batches and steps else None
    return fit(model, [phase], objective, speed=speed, recipe={**recipe_of(recipe or {}), "lr": lr}, bn_batches=recalibration)


def transfer(model: TransferModel, strategy: Strategy, loss: AdaptationLoss, ctx: TransferContext, selector=None) -> TrainStats:
    """Train ``model`` on the target as ``strategy`` and ``loss`` direct.

    Each step concatenates the labeled target shots, labeled source (when the strategy keeps it
    or the loss needs source features) and unlabeled target into one backbone pass, then sums:
    CE on the target shots + the strategy's source loss (or plain source CE when the adaptation
    loss ``uses_source_labels``) + weight * adaptation loss (absent when the loss returns None,
    as ``control`` does) + regulariser. The optimizer and schedule are ``ctx.recipe``; a loss
    without ``gradient_steps`` (``adabn``) trains nothing. Afterwards BatchNorm statistics are
    recomputed over ``ctx.bn_batches`` batches of the same mix (of unlabeled target only when
    the loss's ``bn_statistics`` is ``"target"``). ``selector`` picks the reported checkpoint
    (see ``fit``); without one it is the last step.
    """
    strategy.to(ctx.device)
    loss.to(ctx.device)
    strategy.setup(model, ctx)
    phases = strategy.phases(model, ctx)
    if not loss.gradient_steps:
        phases = [Phase(p.name, p.param_groups, 0) for p in phases]
    adapt = loss.needs_target_unlabeled
    generalise = getattr(loss, "domain_generalisation", False)  # source domains only (see AdaptationLoss)
    labeled = ctx.target_labeled
    use_source = strategy.uses_source_labels or adapt or generalise
    gen = ctx.generator
    domains = ctx.source_train.domains
    samplers = {
        "target": Sampler(len(labeled), ctx.batch_size, gen) if labeled is not None else None,
        "source": ((DomainSampler(domains, ctx.batch_size, gen) if generalise and domains is not None
                    else Sampler(len(ctx.source_train), ctx.batch_size, gen)) if use_source else None),
        "unlabeled": Sampler(len(ctx.target_unlabeled), ctx.batch_size, gen) if adapt else None,
    }

    def draw_mix(augmented: bool = True):
        """One step's inputs: (parts, sizes, indices) of target shots, source and unlabeled target
        (each part through ``ctx.train_view`` when there is one and ``augmented``)."""
        parts, sizes, index = [], [], {}
        view = ctx.train_view if augmented else None
        if samplers["target"] is not None:
            index["target"] = samplers["target"].next_index().to(ctx.device)
            parts.append(draw(labeled.x, index["target"], view))
        if samplers["source"] is not None:
            index["source"] = samplers["source"].next_index().to(ctx.device)
            parts.append(draw(ctx.source_train.x, index["source"], view))
        if samplers["unlabeled"] is not None:
            index["unlabeled"] = samplers["unlabeled"].next_index().to(ctx.device)
            parts.append(draw(ctx.target_unlabeled, index["unlabeled"], view))
        sizes = [len(p) for p in parts]
        return parts, sizes, index

    def objective(progress):
        parts, sizes, index = draw_mix()
        terms = {}
        if parts:
            features = model.backbone(torch.cat(parts))
            chunks = list(torch.split(features, sizes))
            if "target" in index:
                terms["target_ce"] = F.cross_entropy(model.head(chunks.pop(0)), labeled.y[index["target"]])
            if "source" in index:
                s_idx = index["source"]
                source_features = chunks.pop(0)
                if strategy.uses_source_labels:
                    terms["source"] = strategy.source_loss(model, source_features, ctx.source_train.y[s_idx], s_idx)
                elif (adapt or generalise) and loss.uses_source_labels:
                    terms["source_ce"] = F.cross_entropy(model.head(source_features), ctx.source_train.y[s_idx])
                if generalise:
                    source_inputs = parts[1 if "target" in index else 0]
                    terms.update(_generalisation_terms(loss, model, ctx, source_features, source_inputs, s_idx, progress))
            if adapt:
                target_features = chunks.pop(0)
                batch = AdaptationBatch(
                    source_features,
                    model.head(source_features),
                    target_features,
                    model.head(target_features),
                    parts[-1],
                    model,
                    ctx.augment,
                    progress,
                    ctx.source_train.x[index["source"]],
                    None if ctx.source_train.domains is None else ctx.source_train.domains[index["source"]],
                )
                value = loss(batch)
                if value is not None:  # None: no adaptation term (the `control` loss)
                    terms["adaptation"] = loss.weight * value
        penalty = strategy.regulariser(model)
        if penalty is not None and terms:
            terms["regulariser"] = penalty
        return terms, sum(sizes)

    def recalibration_batches():
        if loss.bn_statistics == "target":
            sampler = Sampler(len(ctx.target_unlabeled), ctx.batch_size, gen)
            return [ctx.target_unlabeled[sampler.next_index().to(ctx.device)] for _ in range(ctx.bn_batches)]
        out = []
        for _ in range(ctx.bn_batches):
            parts, _, _ = draw_mix(augmented=False)
            if parts:
                out.append(torch.cat(parts))
        return out

    extra = [{"params": list(owner.parameters()), "lr_scale": owner.hparams.get("lr_scale"), "name": type(owner).__name__}
             for owner in (strategy, loss)]
    stats = fit(model, phases, objective, extra_params=extra, log=ctx.log, speed=ctx.extra.get("speed"), selector=selector,
                recipe=ctx.recipe or transfer_recipe({"lr": ctx.lr}, loss.hparams),
                bn_batches=recalibration_batches if ctx.bn_batches else None)
    mix = [name for key, name in (("target", "target_labeled"), ("source", "source"), ("unlabeled", "target_unlabeled"))
           if samplers[key] is not None]
    if loss.bn_statistics == "target":
        stats.bn_inputs = ["target_unlabeled"]
    elif mix and any(p["steps"] for p in stats.phases):
        stats.bn_inputs = mix  # (untrained: the source model's statistics, the default)
    return stats


def _generalisation_terms(loss, model, ctx, features, inputs, index, progress) -> dict:
    """A domain-generalisation loss's term for one step's source batch: ``adaptation`` (a
    penalty, weighted) or, for a loss without ``uses_source_labels``, ``source`` (the objective)."""
    domains = ctx.source_train.domains
    empty = features[:0]
    batch = AdaptationBatch(features, model.head(features), empty, model.head(empty), inputs[:0], model, ctx.augment,
                            progress, inputs,
                            torch.zeros(len(index), dtype=torch.long, device=features.device) if domains is None else domains[index],
                            ctx.source_train.y[index])
    value = loss(batch)
    if value is None:  # erm: the loop alone
        return {}
    return {"adaptation" if loss.uses_source_labels else "source": loss.weight * value}


@torch.inference_mode()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = EVAL_BATCH_SIZE) -> torch.Tensor:
    """Logits for every row of ``x`` in eval mode."""
    model.eval()
    return torch.cat(map_batches(model, x, batch_size))


def accuracy(model: nn.Module, split: Split, batch_size: int = EVAL_BATCH_SIZE) -> float:
    """Top-1 accuracy of ``model`` on ``split``."""
    logits = predict_logits(model, split.x, batch_size)
    return float((logits.argmax(1) == split.y).float().mean())
