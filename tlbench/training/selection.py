"""Which checkpoint a run reports: the last step (default), or the step a validator scores best.

``model_selection`` names the validator (a plugin, tlbench.plugin.validator; the runner builds
its score function with tlbench.search.scoring). ``source-val`` scores a held-out slice of the
source train split (never trained on, also not by the source model); ``entropy``, ``im``,
``snd`` and ``dev`` read unlabeled target training data (``dev`` the source slice too);
``target-oracle`` scores the target TEST split, which makes the reported target accuracy
optimistic: it is there to show the headroom, not as a fair result.
"""

from __future__ import annotations

import time

import torch

from tlbench.settings.train import LAST_STEP

SOURCE_VAL_FRACTION = 0.1
SOURCE_VAL_MAX = 1000


def holdout(split, generator: torch.Generator, fraction: float = SOURCE_VAL_FRACTION, limit: int = SOURCE_VAL_MAX):
    """``(train, val)``: a seeded random slice of ``split`` (``fraction`` of it, at most ``limit``
    rows, at least one) held out from the rest. Host-resident inputs stay host-resident."""
    n = len(split)
    size = max(1, min(limit, int(round(n * fraction))))
    if n - size < 1:
        raise ValueError(f"a split of {n} examples is too small to hold out a validation slice")
    order = torch.randperm(n, generator=generator)
    val_idx, train_idx = order[:size].sort().values, order[size:].sort().values

    return split.take(train_idx), split.take(val_idx)  # host or streamed inputs stay so; domains follow their rows


class Selector:
    """Scores the model every ``every`` steps and after the last one, keeps a copy of the best
    state, and restores it at the end. Time spent scoring is kept apart (``seconds``) so the
    run's training speed is not charged for it."""

    def __init__(self, score, every: int, name: str, higher_is_better: bool = True, oracle=None):
        self.score, self.every, self.name = score, max(1, int(every)), name
        self.higher_is_better = higher_is_better
        self.oracle = oracle  # scored at the same checkpoints, only recorded (train.selection_oracle)
        self.oracle_scores: list[tuple[int, float]] = []
        self.best_score: float | None = None
        self.best_step: int | None = None
        self.best_state: dict | None = None
        self.evaluations = 0
        self.last_step: int | None = None
        self.seconds = 0.0

    def _evaluate(self, model, step: int) -> None:
        start = time.perf_counter()
        modes = {m: m.training for m in model.modules()}
        value = float(self.score(model))
        if self.oracle is not None:
            self.oracle_scores.append((step, float(self.oracle(model))))
        for module, training in modes.items():
            module.train(training)
        self.evaluations += 1
        self.last_step = step
        if self.best_score is None or (value > self.best_score if self.higher_is_better else value < self.best_score):
            self.best_score, self.best_step = value, step
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.seconds += time.perf_counter() - start

    def after_step(self, model, step: int) -> None:
        """Called by the training loop after optimizer step number ``step`` (1-based)."""
        if step % self.every == 0:
            self._evaluate(model, step)

    def finish(self, model, step: int) -> None:
        """Score the final state (unless just scored), then load the best state into ``model``."""
        if self.last_step != step:
            self._evaluate(model, step)
        if self.best_state is not None:
            start = time.perf_counter()
            model.load_state_dict(self.best_state)
            self.seconds += time.perf_counter() - start

    def as_dict(self) -> dict:
        """What is recorded in result.json (with ``oracle_selection`` when an oracle scored the
        checkpoints too: its pick, its accuracy there, and its score at the selected step)."""
        out = {
            "model_selection": self.name,
            "selected_step": self.best_step,
            "selection_score": self.best_score,
            "selection_evaluations": self.evaluations,
            "selection_seconds": round(self.seconds, 4),
        }
        if self.oracle_scores:
            step, best = max(self.oracle_scores, key=lambda point: point[1])  # the earliest of equal bests
            out["oracle_selection"] = {"step": step, "target_acc": best,
                                       "at_selected_step": dict(self.oracle_scores).get(self.best_step),
                                       "checkpoints": [[s, round(v, 6)] for s, v in self.oracle_scores]}
        return out


def make_selector(train, score=None, higher_is_better: bool = True, oracle=None) -> Selector | None:
    """The selector a run's ``[train]`` settings ask for (None for the last step): ``score(model)``
    is the score of the validator that ``model_selection`` names, larger or smaller is better."""
    name = train.model_selection
    if name == LAST_STEP:
        return None
    if score is None:
        raise ValueError(f"model_selection {name!r} needs its validator's score function")
    return Selector(score, train.selection_every, name, higher_is_better, oracle)
