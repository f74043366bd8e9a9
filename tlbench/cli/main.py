"""`tlbench run | plugins | leaderboard`: the command line. Bad input -> one line, exit code 2."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from tlbench.cli.paths import check_cache_dirs, check_output_dir, check_output_file, check_plot_target
from tlbench.cli.values import refuse_empty
from tlbench.plugin.errors import UserError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error on one line instead of usage + message."""

    def error(self, message):
        raise UserError(f"{self.prog}: {message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tlbench", description="Transfer-learning benchmark harness.")
    parser.add_argument("--plugins-dir", action="append", default=[], metavar="DIR", help="also load *.py plugins from DIR")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run a grid of source->target transfers")
    run.add_argument("--grid", nargs="?", const="default", metavar="FILE.toml", help="grid file; alone: the built-in default grid")
    for flag, example in (
        ("backbone", "smallcnn,resnet18"),
        ("source", "digits:mnist"),
        ("target", "digits:uci"),
        ("strategy", "scratch,finetune"),
        ("loss", "none,dann"),
        ("shots", "0,10,all"),
        ("seeds", "0,1"),
    ):
        run.add_argument(f"--{flag}", metavar="A,B", help=f"comma-separated, e.g. {example}")
    run.add_argument("--leave-one-out", metavar="DATASET", help="every domain of DATASET as the target once, trained on "
                     "all its other domains (DomainBed's sweep; domain generalisation unless --shots asks for target labels)")
    run.add_argument("--results-dir", metavar="DIR", help="where run directories go (default results/runs)")
    run.add_argument("--device", metavar="DEV", help="auto (default), cpu, cuda, cuda:N")
    run.add_argument("--data-root", metavar="DIR", help="where datasets read from disk live (passed as their data_root option)")
    run.add_argument("--download", action="store_true", default=None, help="let datasets that can download fetch missing data")
    run.add_argument("--dry-run", action="store_true", help="validate the grid (names, options, datasets and their files) "
                     "and say what would run; train and write nothing")
    run.add_argument("--set", action="append", default=[], metavar="NAME.PARAM=VALUE", help="plugin or train option")
    run.add_argument("--executor", metavar="NAME", help="where cells run: local (default), processes, ray")
    run.add_argument("--workers", metavar="N", help="worker processes (processes) or CPUs of a local Ray instance")
    run.add_argument("--devices", metavar="A,B", help="processes executor: one device per worker, e.g. cuda:0,cuda:1")
    run.add_argument("--ray-address", metavar="auto|HOST:PORT", help="ray executor: join this cluster (default: a local instance); "
                     "gives up after 30s without an answer (env TLBENCH_RAY_CONNECT_TIMEOUT)")
    run.add_argument("--threads", metavar="N", help="torch CPU threads per cell (default: cores / workers)")
    run.add_argument("--mlflow", nargs="?", const="", metavar="URI", help="log the runs to MLflow (default file:RESULTS/mlruns)")
    from tlbench.deploy.verifiers import add_verify_argument

    add_verify_argument(run)
    run.add_argument("--plugins-dir", action="append", default=[], metavar="DIR", dest="run_plugins_dir", help=argparse.SUPPRESS)
    from tlbench.search.flags import add_board_flags, add_run_flags

    add_run_flags(run)  # --search N, --select VALIDATOR

    plugins = sub.add_parser("plugins", help="list registered plugins, or show one plugin's options and defaults")
    plugins.add_argument("name", nargs="?", metavar="NAME", help="show this plugin: kind, provider, description, options with defaults")
    plugins.add_argument("--json", action="store_true", help="machine-readable output")

    board = sub.add_parser("leaderboard", help="re-render the leaderboard of stored results")
    board.add_argument("results_dir", nargs="?", default="results/runs", metavar="DIR")
    board.add_argument("--format", choices=("table", "csv", "md", "json", "html"), default="table")
    board.add_argument("--output", "-o", metavar="FILE", help="write the export (or the plain-text table) here instead of stdout")
    board.add_argument("--plot", metavar="FILE.png|DIR/", help="a path ending in .png: the accuracy-vs-shots plot there; an existing "
                       "directory or a path ending in '/': every PNG plot in it; anything else is an error")
    board.add_argument("--columns", metavar="A,B", help="default, all, or keys: " + ", ".join(_column_keys()))
    board.add_argument("--export-all", metavar="OUTDIR", help="write leaderboard.{md,csv,json,html} and every plot to OUTDIR")
    board.add_argument("--mlflow", nargs="?", const="", metavar="URI", help="log the runs to MLflow (default file:DIR/mlruns)")
    board.add_argument("--metric", default="acc", metavar="NAME", help="rank by acc (default), balanced_acc, macro_f1 or "
                       "worst_class_acc of the target test split, recomputed from each run's saved predictions")
    add_board_flags(board)  # --select VALIDATOR
    from tlbench.cli.deploy import add_deploy_parsers

    add_deploy_parsers(sub)
    from tlbench.cli.rank import add_rank_parser

    add_rank_parser(sub)
    from tlbench.cli.verify import add_verify_parser

    add_verify_parser(sub)
    return parser


def _column_keys() -> list[str]:
    from tlbench.report.leaderboard import COLUMNS

    return list(COLUMNS)


def _flag_config(args) -> dict:
    from tlbench.cli.parsing import data_and_set_config, list_flag

    config = {}
    for key in ("backbone", "source", "target", "strategy", "loss", "shots", "seeds"):
        value = getattr(args, key)
        if value is not None:
            config[key] = list_flag(key, value)
    for key in ("device", "data_root", "executor", "workers", "devices", "ray_address", "threads"):
        refuse_empty(args, key)
    if args.results_dir is not None:
        config["results_dir"] = args.results_dir
    if args.leave_one_out is not None:
        config["leave_one_out"] = args.leave_one_out
    if args.device is not None:
        config["device"] = args.device
    for key in ("executor", "workers", "devices", "ray_address", "threads"):
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)
    from tlbench.search.flags import search_flag_config

    config.update(search_flag_config(args))
    config.update(data_and_set_config(args))  # --data-root, --download, --set, read as `tlbench rank` reads them
    from tlbench.deploy.verifiers import apply_verify_flag

    return apply_verify_flag(args, config)


def cmd_run(args, registry) -> int:
    from rich.console import Console

    from tlbench.utils.environment import resolve_device
    from tlbench.grid import DEFAULT_RESULTS_DIR, default_grid_path, expand, merge_config, read_grid_file
    from tlbench.execution.grid_runner import run_grid

    console = Console(log_path=False, width=None if sys.stdout.isatty() else 180)
    if args.grid is None and args.backbone is None:
        raise UserError("nothing to run: give --grid (built-in default), --grid FILE.toml, or --backbone/--source/--target")
    file_config = {}
    refuse_empty(args, "grid")
    if args.grid is not None:
        file_config = read_grid_file(default_grid_path() if args.grid == "default" else args.grid)
    else:
        file_config = {"strategy": ["finetune"], "loss": ["none"], "shots": [10], "seeds": [0]}
    config = merge_config(file_config, _flag_config(args))
    from tlbench.execution.contract import resolve_settings
    from tlbench.plugin.errors import with_plugin_hints

    try:
        specs = expand(config, registry)
        settings = resolve_settings(config, registry)
    except UserError as exc:  # an unknown name may be one a broken plugin would have provided
        raise with_plugin_hints(exc, registry.broken) from None
    results_dir = config.get("results_dir", DEFAULT_RESULTS_DIR)
    if not isinstance(results_dir, str) or not results_dir:
        raise UserError("results_dir must be a directory path")
    check_output_dir(results_dir, "--results-dir" if args.results_dir is not None else "results_dir")
    check_cache_dirs(results_dir, "--results-dir" if args.results_dir is not None else "results_dir")
    device = config.get("device", "auto")
    if not isinstance(device, str) or not device.strip():
        raise UserError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")
    device = resolve_device(device)  # a device this machine lacks is refused now, not when the first cell starts
    if args.mlflow is not None:
        from tlbench.report.tracking import check_tracking_uri

        store = check_tracking_uri(args.mlflow or None)
        check_output_dir(store or str(Path(results_dir) / "mlruns"), "--mlflow")
    if registry.broken:
        from tlbench.plugin.errors import broken_summary

        print(f"warning: {broken_summary(registry.broken)}; see `tlbench plugins`", file=sys.stderr)
    if args.dry_run:
        from tlbench.cli.plan import describe_plan

        console.print(describe_plan(specs, registry, results_dir, device), markup=False)
        from tlbench.search.trials import search_settings, total_trials

        search = search_settings(config, registry)  # its spaces are checked here too
        if search is not None:
            console.print(f"search: {search.settings.trials} trials of each grid cell ({search.settings.sampler} sampler, "
                          f"seed {search.settings.seed}): {total_trials(config, registry, specs)} trial cells when it runs",
                          markup=False)
        return 0
    plugins_dirs = list(args.plugins_dir) + list(args.run_plugins_dir or [])
    from tlbench.report.leaderboard import render

    from tlbench.search.driver import run_search

    run = lambda todo, show: run_grid(todo, registry, results_dir, device, console, settings, plugins_dirs, show)  # noqa: E731
    code = run_search(config, registry, specs, run, render, log=console.print, select=args.select)
    if args.mlflow is not None:
        from tlbench.report.tracking import log_results_dir

        log_results_dir(results_dir, args.mlflow or None, log=console.print)
    return code


def cmd_leaderboard(args, registry=None) -> int:
    from tlbench.report import formats, leaderboard
    from tlbench.execution.results import scan_results

    refuse_empty(args, "results_dir", "DIR")
    directory = Path(args.results_dir)
    if not directory.is_dir():
        raise UserError(f"results directory {str(directory)!r} does not exist; run `tlbench run` first or pass DIR")
    leaderboard.choose_columns(args.columns, [])
    from tlbench.report.metric_view import check_metric, with_metric

    check_metric(args.metric)
    # every output is checked before anything is computed or written
    if args.output is not None:
        check_output_file(args.output, "--output")
    plot_kind = check_plot_target(args.plot) if args.plot is not None else None
    if args.export_all is not None:
        check_output_dir(args.export_all, "--export-all")
    if args.mlflow is not None:
        from tlbench.report.tracking import check_tracking_uri

        store = check_tracking_uri(args.mlflow or None)
        check_output_dir(store or str(directory / "mlruns"), "--mlflow")
    results, skipped = scan_results(directory)
    from tlbench.report.selection import annotate

    results = annotate(results, args.select)  # search trials: which one --select picks per group and seed
    if skipped:
        path, why = skipped[0]
        summary = f"{len(skipped)} unreadable result.json file(s) under {str(directory)!r} (first: {str(path)!r}: {why})"
        if not results:
            raise UserError(f"all {summary}; rerun the grid with `tlbench run` to recompute them")
        print(f"warning: skipped {summary}; rerun the grid to recompute them", file=sys.stderr)
    if not results:
        raise UserError(f"no result files under {str(directory)!r}; expected DIR/<run>/result.json")
    if args.mlflow is not None:
        from tlbench.report.tracking import log_results_dir

        log_results_dir(directory, args.mlflow or None, log=lambda line: print(line, file=sys.stderr))
    from tlbench.report.mixed import mixed_provenance

    mixed = mixed_provenance(results)
    if mixed:
        print(f"warning: {mixed}", file=sys.stderr)
    results, missing = with_metric(results, directory, args.metric)  # after MLflow, which logs the stored accuracy
    if missing:
        if not any(r.get("status") == "ok" for r in results):
            raise UserError(f"no run under {str(directory)!r} has saved predictions; --metric {args.metric} needs them "
                            "(runs written before they were saved): rerun the grid, or use --metric acc")
        print(f"warning: left out {missing} run(s) without saved predictions (written before they were saved): "
              f"--metric {args.metric} cannot be computed for them; rerun them, or use --metric acc", file=sys.stderr)
    if args.export_all is not None:
        from tlbench.report.exports import export_all

        for path in export_all(results, args.export_all, columns=args.columns):
            print(f"wrote {path}", file=sys.stderr)
        return 0
    if args.plot is not None:
        from tlbench.report.plots import write_plots

        for path in write_plots(leaderboard.aggregate(results), args.plot, results):
            print(f"wrote {path}", file=sys.stderr)
    if args.format == "table":
        if args.output is None:
            leaderboard.render(results, columns=args.columns)
            return 0
        import io

        from rich.console import Console

        buffer = io.StringIO()
        leaderboard.render(results, console=Console(file=buffer, width=200, color_system=None, force_terminal=False),
                           columns=args.columns)
        text = buffer.getvalue()
    elif args.format == "html":
        from tlbench.report.exports import html_with_plots

        text = html_with_plots(results, args.columns, plot_dir=args.plot if plot_kind == "dir" else None)
    else:
        text = formats.export(results, args.format, columns=args.columns)
    if args.output is not None:
        from tlbench.utils.atomic import atomic_write_bytes

        atomic_write_bytes(args.output, text.encode("utf-8"))
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _quiet_broken_pipe() -> int:
    """stdout's reader went away (``tlbench ... | head``): stop quietly, no traceback, and keep
    the interpreter's final flush from raising again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout is not a real file (captured in tests)
        pass
    return 141  # 128 + SIGPIPE, what a shell reports for a writer killed by a closed pipe


def main(argv=None) -> int:
    """Entry point of the ``tlbench`` console script."""
    try:
        args = build_parser().parse_args(argv)
        registry = None
        if args.command in ("run", "plugins", "export", "rank", "verify"):
            from tlbench.plugin.discovery import check_allowlist, load_plugins

            dirs = list(args.plugins_dir) + list(getattr(args, "run_plugins_dir", []) or [])
            for directory in dirs:
                if not directory.strip() or not Path(directory).is_dir():
                    raise UserError(f"--plugins-dir {directory!r} is not a directory")
            check_allowlist(dirs)
            _, registry = load_plugins(dirs)
        from tlbench.cli.deploy import cmd_export, cmd_predict
        from tlbench.cli.plugins_cmd import cmd_plugins
        from tlbench.cli.rank import cmd_rank
        from tlbench.cli.verify import cmd_verify

        handler = {"run": cmd_run, "plugins": cmd_plugins, "leaderboard": cmd_leaderboard, "predict": cmd_predict,
                   "export": cmd_export, "rank": cmd_rank, "verify": cmd_verify}[args.command]
        code = handler(args, registry)
        sys.stdout.flush()
        return code
    except UserError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def console_main() -> None:
    """The ``tlbench`` console script: :func:`main`, then an exit that a late Ctrl-C cannot turn into a signal death."""
    from tlbench.execution.interrupts import exit_process

    exit_process(main())


if __name__ == "__main__":
    console_main()
