"""``tlbench rank``: candidates -> validated specs -> source models -> scores, ranked.

A candidate is a backbone and the source its weights come from: ``NAME`` pairs the backbone
with every ``--source``; ``NAME@SOURCE`` fixes its own (``efficientnet_lite0@pretrained``,
``smallcnn@digits:mnist[0-4]``), so trained source models and pretrained weights rank side by
side. Each candidate is validated exactly as a grid cell ``NAME x SOURCE -> TARGET`` with
strategy ``finetune`` would be, and its source model is the one such a cell uses: trained and
cached under the results directory (or found there), or the backbone's pretrained weights.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from tlbench.grid import expand
from tlbench.plugin.errors import UserError
from tlbench.transferability.cell import scores_for
from tlbench.transferability.features import labeled_examples

STRATEGY, LOSS = "finetune", "none"  # the cell a candidate is validated (and cached) as


@dataclass(frozen=True)
class Candidate:
    """One backbone with the source of its weights; ``label`` is how the user wrote it."""

    backbone: str
    source: str

    @property
    def label(self) -> str:
        return f"{self.backbone}@{self.source}"


def parse_candidates(backbones: list[str], sources: list[str]) -> list[Candidate]:
    """``NAME`` x every source, ``NAME@SOURCE`` as written; duplicates dropped, order kept."""
    out = []
    for item in backbones:
        name, at, source = item.partition("@")
        name, source = name.strip(), source.strip()
        if at and (not name or not source):
            raise UserError(f"--backbone item {item!r} must be NAME or NAME@SOURCE, e.g. efficientnet_lite0@pretrained")
        if at:
            out.append(Candidate(name, source))
        elif not sources:
            raise UserError(f"backbone {name!r} has no source: give --source DATASET:DOMAIN or pretrained, "
                            f"or write {name}@SOURCE")
        else:
            out.extend(Candidate(name, s) for s in sources)
    return list(dict.fromkeys(out))


def _set_tables(sets: dict, registry, backbones: set[str]) -> tuple[dict, dict]:
    """(grid ``set`` tables, estimator options): ``--set knn.k=3`` goes to the estimator; a
    backbone table for a backbone no candidate uses is an error; the rest pass to the grid."""
    grid, estimators = {}, {}
    for name, options in sets.items():
        if name in registry.entries["estimators"] and name not in registry.entries["backbones"]:
            estimators[name] = options
        elif name in registry.entries["backbones"] and name not in backbones:
            raise UserError(f"--set {name}.* is for backbone {name!r}, which no candidate uses; "
                            f"candidates' backbones: {', '.join(sorted(backbones))}; add it to --backbone or drop the setting")
        else:
            grid[name] = options
    return grid, estimators


def candidate_specs(candidates, target: str, shots, seed: int, config: dict, registry) -> tuple[list, dict]:
    """([(candidate, RunSpec)], estimator options), every candidate validated as its grid cell
    (same checks and one-line errors as ``tlbench run``) before anything trains."""
    sets, estimator_options = _set_tables(config.get("set") or {}, registry, {c.backbone for c in candidates})
    pairs = []
    for candidate in candidates:
        own = {name: options for name, options in sets.items()
               if name == candidate.backbone or name not in registry.entries["backbones"]}
        cell = {**config, "backbone": [candidate.backbone], "source": [candidate.source], "target": [target],
                "strategy": [STRATEGY], "loss": [LOSS], "shots": [shots], "seeds": [seed], "set": own}
        specs = expand(cell, registry)
        if not specs:
            raise UserError(f"candidate {candidate.label}: its source and the target {target} are the same domain")
        if specs[0].shots == 0:  # parsed as the grid parses it: 0, 00 and " 0" alike
            raise UserError(f"--shots {shots} gives the estimators no labeled target examples; use --shots 1 or more, or all")
        pairs.append((candidate, specs[0]))
    return pairs, estimator_options


def rank_candidates(runner, pairs, estimators: dict, by: str, status=lambda finished, text: None) -> list[dict]:
    """One row per candidate: source model (trained, cached or pretrained), features and every
    estimator's score and time; sorted by estimator ``by`` (higher first, no score last)."""
    rows = []
    for finished, (candidate, spec) in enumerate(pairs):
        status(finished, f"{candidate.label}: source model")
        speed, backbone, target, shape, data, _ = runner.cell_inputs(spec)
        num_source = len(data["source_classes"] or target.classes)
        start = time.perf_counter()
        state, info = runner.source_state(spec, backbone, shape, num_source, data["source_train"], speed,
                                           data["source_preprocessing"])
        source_seconds = time.perf_counter() - start
        status(finished, f"{candidate.label}: features and scores")
        labeled = labeled_examples(data["target_train"], spec.shots, spec.seed)
        record = scores_for(runner, spec, backbone, shape, state, num_source, labeled, estimators, refresh=True)
        origin = "pretrained" if spec.kind == "pretrained" else "cached" if info.get("source_cached") else "trained"
        rows.append({
            "candidate": candidate.label, "backbone": candidate.backbone, "source": candidate.source,
            "transfer_kind": spec.kind, "source_model": origin, "source_seconds": round(source_seconds, 3),
            **{k: v for k, v in record.items() if k != "cached"},
        })
    rows.sort(key=lambda r: (r["scores"].get(by) is None, -(r["scores"].get(by) or 0.0)))
    for position, row in enumerate(rows, 1):
        row["rank"] = position if row["scores"].get(by) is not None else None
    return rows
