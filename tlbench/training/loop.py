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
from tlbench.training.data import Sampler
from tlbench.training.speed import HostTensor, loader_batches
from tlbench.training.model import TransferModel, freeze_untrained


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class TrainStats:
    """What a training run cost: wall time, examples seen, steps per phase, final loss terms."""

    seconds: float = 0.0
    samples: int = 0
    phases: list[dict] = field(default_factory=list)
    last_terms: dict[str, float] = field(default_factory=dict)

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else 0.0


def synchronize(device) -> None:
    """Wait for queued GPU work so wall-clock timings are honest."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


# An objective computes the loss terms of one step and the number of examples it used.
Objective = Callable[[float], tuple[dict[str, torch.Tensor], int]]


def fit(model: nn.Module, phases: list[Phase], objective: Objective, extra_params=(), log=None, speed=None,
        selector=None) -> TrainStats:
    """Run ``phases`` in order: only each phase's parameter groups train; ``extra_params``
    (a loss's discriminator, a strategy's extra head) train throughout at the first group's lr.
    A ``selector`` (tlbench.training.selection) scores checkpoints and restores the best one at the end;
    its scoring time is not counted as training time."""
    stats = TrainStats()
    extra_params = list(extra_params)
    total_steps = max(1, sum(p.steps for p in phases))
    done = 0
    device = next(model.parameters()).device
    scaler = speed.grad_scaler() if speed is not None else None
    synchronize(device)
    start = time.perf_counter()
    for phase in phases:
        trainable = {id(p) for group in phase.param_groups for p in group["params"]}
        for p in model.parameters():
            p.requires_grad_(id(p) in trainable)
        freeze_untrained(model)
        groups = [dict(g) for g in phase.param_groups if g["params"]]
        if extra_params:
            groups.append({"params": list(extra_params), "lr": groups[0]["lr"] if groups else 1e-3})
        optimizer = torch.optim.Adam(groups) if groups else None
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
                raise NonFiniteLoss(f"loss is {loss.item()} at step {done} ({', '.join(terms)})")
            optimizer.zero_grad(set_to_none=True)
            if scaler is None:
                loss.backward()
                optimizer.step()
            else:  # fp16 AMP
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            stats.samples += used
            done += 1
            steps_run += 1
            stats.last_terms = {k: float(v.detach()) for k, v in terms.items()}
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
    for p in model.parameters():
        p.requires_grad_(True)
    model.eval()
    stats.seconds = time.perf_counter() - start - (selector.seconds if selector is not None else 0.0)
    return stats


def pretrain_source(model: TransferModel, train: Split, epochs: float, batch_size: int, lr: float, generator, speed=None) -> TrainStats:
    """Supervised training of backbone + head on the labeled source domain; a host-resident
    (large) dataset is streamed through a DataLoader (see tlbench.training.speed)."""
    steps = math.ceil(epochs * len(train) / batch_size)
    if speed is not None and isinstance(train.x, HostTensor):
        batches = loader_batches(train.x, train.y, batch_size, generator, speed)

        def objective(progress):
            xb, yb = next(batches)
            return {"source_ce": F.cross_entropy(model(xb), yb)}, len(yb)
    else:
        sampler = Sampler(len(train), batch_size, generator)

        def objective(progress):
            index = sampler.next_index().to(train.x.device)
            return {"source_ce": F.cross_entropy(model(train.x[index]), train.y[index])}, len(index)

    phase = Phase("source", [{"params": list(model.parameters()), "lr": lr}], steps)
    return fit(model, [phase], objective, speed=speed)


def transfer(model: TransferModel, strategy: Strategy, loss: AdaptationLoss, ctx: TransferContext, selector=None) -> TrainStats:
    """Train ``model`` on the target as ``strategy`` and ``loss`` direct.

    Each step concatenates the labeled target shots, labeled source (when the strategy keeps it
    or the loss needs source features) and unlabeled target into one backbone pass, then sums:
    CE on the target shots + the strategy's source loss (or plain source CE when the adaptation
    loss ``uses_source_labels``) + weight * adaptation loss + regulariser. ``selector`` picks the
    reported checkpoint (see ``fit``); without one it is the last step.
    """
    strategy.to(ctx.device)
    loss.to(ctx.device)
    strategy.setup(model, ctx)
    phases = strategy.phases(model, ctx)
    adapt = loss.needs_target_unlabeled
    labeled = ctx.target_labeled
    use_source = strategy.uses_source_labels or adapt
    gen = ctx.generator
    samplers = {
        "target": Sampler(len(labeled), ctx.batch_size, gen) if labeled is not None else None,
        "source": Sampler(len(ctx.source_train), ctx.batch_size, gen) if use_source else None,
        "unlabeled": Sampler(len(ctx.target_unlabeled), ctx.batch_size, gen) if adapt else None,
    }

    def objective(progress):
        parts, sizes = [], []
        if samplers["target"] is not None:
            t_idx = samplers["target"].next_index().to(ctx.device)
            parts.append(labeled.x[t_idx])
            sizes.append(len(t_idx))
        if samplers["source"] is not None:
            s_idx = samplers["source"].next_index().to(ctx.device)
            parts.append(ctx.source_train.x[s_idx])
            sizes.append(len(s_idx))
        if samplers["unlabeled"] is not None:
            u_idx = samplers["unlabeled"].next_index().to(ctx.device)
            x_unlabeled = ctx.target_unlabeled[u_idx]
            parts.append(x_unlabeled)
            sizes.append(len(u_idx))
        terms = {}
        if parts:
            features = model.backbone(torch.cat(parts))
            chunks = list(torch.split(features, sizes))
            if samplers["target"] is not None:
                terms["target_ce"] = F.cross_entropy(model.head(chunks.pop(0)), labeled.y[t_idx])
            if samplers["source"] is not None:
                source_features = chunks.pop(0)
                if strategy.uses_source_labels:
                    terms["source"] = strategy.source_loss(model, source_features, ctx.source_train.y[s_idx], s_idx)
                elif adapt and loss.uses_source_labels:
                    terms["source_ce"] = F.cross_entropy(model.head(source_features), ctx.source_train.y[s_idx])
            if adapt:
                target_features = chunks.pop(0)
                batch = AdaptationBatch(
                    source_features,
                    model.head(source_features),
                    target_features,
                    model.head(target_features),
                    x_unlabeled,
                    model,
                    ctx.augment,
                    progress,
                    ctx.source_train.x[s_idx],
                )
                terms["adaptation"] = loss.weight * loss(batch)
        penalty = strategy.regulariser(model)
        if penalty is not None and terms:
            terms["regulariser"] = penalty
        return terms, sum(sizes)

    extra = list(strategy.parameters()) + list(loss.parameters())
    return fit(model, phases, objective, extra_params=extra, log=ctx.log, speed=ctx.extra.get("speed"), selector=selector)


@torch.inference_mode()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Logits for every row of ``x`` in eval mode."""
    model.eval()
    return torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def accuracy(model: nn.Module, split: Split, batch_size: int = 512) -> float:
    """Top-1 accuracy of ``model`` on ``split``."""
    logits = predict_logits(model, split.x, batch_size)
    return float((logits.argmax(1) == split.y).float().mean())
