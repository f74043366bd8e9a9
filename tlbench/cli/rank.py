"""`tlbench rank`: rank candidate backbones / source models for a target before fine-tuning.

    tlbench rank --backbone smallcnn,resnet18,efficientnet_lite0@pretrained \
        --source digits:mnist --target digits:uci --shots 10 [--by logme] [--json]

Progress and logs go to stderr; the table (or ``--json``) to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys

from tlbench.cli.parsing import data_and_set_config, list_flag
from tlbench.plugin.errors import UserError

DEFAULT_BY = "logme"


def add_rank_parser(sub) -> None:
    """Add the ``rank`` subcommand to the CLI's subparsers."""
    rank = sub.add_parser("rank", help="score candidate backbones / source models for a target with transferability "
                          "estimators (no fine-tuning)")
    rank.add_argument("--backbone", metavar="A,B@SOURCE", required=True,
                      help="candidates: NAME (paired with every --source) or NAME@SOURCE, e.g. smallcnn,efficientnet_lite0@pretrained")
    rank.add_argument("--source", metavar="A,B", help="source of plain NAME candidates: DATASET:DOMAIN or pretrained")
    rank.add_argument("--target", metavar="DATASET:DOMAIN", required=True, help="the one target to rank for")
    rank.add_argument("--shots", default="10", metavar="K|all", help="labeled target examples per class the estimators "
                      "see (default 10; all = the train split); never the test split")
    rank.add_argument("--seed", default="0", metavar="N", help="source-model seed and shot draw, as a grid's --seeds (default 0)")
    rank.add_argument("--by", default=DEFAULT_BY, metavar="ESTIMATOR", help=f"rank by this estimator (default {DEFAULT_BY})")
    rank.add_argument("--estimators", metavar="A,B", help="which estimators to compute (default: every registered one)")
    rank.add_argument("--results-dir", default=None, metavar="DIR",
                      help="where source models are cached, shared with `tlbench run` (default results/runs)")
    rank.add_argument("--device", metavar="DEV", help="auto (default), cpu, cuda, cuda:N")
    rank.add_argument("--data-root", metavar="DIR", help="where datasets read from disk live")
    rank.add_argument("--download", action="store_true", default=None, help="let datasets that can download fetch missing data")
    rank.add_argument("--set", action="append", default=[], metavar="NAME.PARAM=VALUE",
                      help="train, backbone, dataset or estimator option (e.g. train.source_epochs=1, knn.k=3)")
    rank.add_argument("--json", action="store_true", help="machine-readable output")
    rank.add_argument("--plugins-dir", action="append", default=[], metavar="DIR", dest="run_plugins_dir", help=argparse.SUPPRESS)


def cmd_rank(args, registry) -> int:
    from rich.console import Console

    from tlbench.cli.paths import check_cache_dirs, check_output_dir
    from tlbench.cli.values import refuse_empty
    from tlbench.grid import DEFAULT_RESULTS_DIR
    from tlbench.plugin.errors import with_plugin_hints
    from tlbench.transferability.rank import candidate_specs, parse_candidates
    from tlbench.transferability.scoring import build_estimators, estimator_names

    for key in ("device", "data_root", "results_dir"):
        refuse_empty(args, key)
    targets = list_flag("target", args.target)
    if len(targets) != 1:
        raise UserError(f"--target names {len(targets)} targets; rank scores candidates for one target, run it once per target")
    candidates = parse_candidates(list_flag("backbone", args.backbone), list_flag("source", args.source) if args.source is not None else [])
    try:
        names = estimator_names(registry, list_flag("estimators", args.estimators) if args.estimators is not None else None)
        if args.by not in names:
            raise UserError(f"--by {args.by!r} is not among the estimators computed ({', '.join(names) or 'none registered'}); "
                            "pick one of them or add it to --estimators")
        config = data_and_set_config(args)  # as `tlbench run` reads them
        pairs, estimator_options = candidate_specs(candidates, targets[0], args.shots, args.seed, config, registry)
        unused = sorted(set(estimator_options) - set(names))
        if unused:
            raise UserError(f"--set {unused[0]}.* is for estimator {unused[0]!r}, which --estimators leaves out")
        estimators = build_estimators(registry, names, estimator_options)
    except UserError as exc:
        raise with_plugin_hints(exc, registry.broken) from None
    results_dir = DEFAULT_RESULTS_DIR if args.results_dir is None else args.results_dir
    check_output_dir(results_dir, "--results-dir")
    check_cache_dirs(results_dir, "--results-dir")
    from tlbench.utils.environment import resolve_device

    device = resolve_device(args.device or "auto")
    rows = _run(registry, results_dir, device, pairs, estimators, args.by)
    if args.json:
        print(json.dumps(_as_json(rows, targets[0], pairs, args.by), indent=2, allow_nan=False))
    else:
        from tlbench.report.transferability import render_rank

        render_rank(rows, targets[0], pairs[0][1], args.by, list(estimators), Console(width=None if sys.stdout.isatty() else 200))
    return 0


def _run(registry, results_dir, device, pairs, estimators, by) -> list[dict]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from tlbench.execution.runner import Runner
    from tlbench.transferability.rank import rank_candidates

    console = Console(stderr=True, log_path=False)
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console, transient=True)
    runner = Runner(registry, results_dir, device, log=lambda message: progress.console.log(message))
    with progress:
        task = progress.add_task("candidates", total=len(pairs))

        def status(finished: int, text: str) -> None:
            progress.update(task, completed=finished, description=text)

        rows = rank_candidates(runner, pairs, estimators, by, status)
    return rows


def _as_json(rows: list[dict], target: str, pairs, by: str) -> dict:
    from tlbench.transferability.cell import labels_from

    spec = pairs[0][1]
    return {"target": target, "shots": spec.shots, "seed": spec.seed, "by": by, "labels_from": labels_from(spec.shots),
            "candidates": rows}
