"""Command-line flags of the search: ``tlbench run --search N --select V`` and
``tlbench leaderboard --select V`` (kept here so the CLI module stays small)."""

from __future__ import annotations

from tlbench.plugin.errors import UserError

SELECT_HELP = ("validator whose pick among search trials the main table shows (default source-val); "
               "the selection table shows every validator's pick, the oracle's and the regret")


def add_run_flags(run_parser) -> None:
    run_parser.add_argument("--search", metavar="N", help="N hyperparameter trials per group (random search; a [search] "
                            "table in the grid file sets sampler, seed and spaces)")
    run_parser.add_argument("--select", metavar="VALIDATOR", help=SELECT_HELP)


def add_board_flags(board_parser) -> None:
    board_parser.add_argument("--select", metavar="VALIDATOR", help=SELECT_HELP)


def search_flag_config(args) -> dict:
    """``{"search": {"trials": N}}`` for ``--search N`` (merged over the grid file's [search])."""
    value = getattr(args, "search", None)
    if value is None:
        return {}
    try:
        trials = int(value)
    except ValueError:
        raise UserError(f"--search {value!r} must be a whole number of trials, e.g. --search 8") from None
    if trials < 1:
        raise UserError(f"--search {trials} must be at least 1 trial per group")
    return {"search": {"trials": trials}}
