"""``Results``: the finished runs of a results directory, as rows, leaderboard rows or a DataFrame."""

from __future__ import annotations

from pathlib import Path

from tlbench.plugin.errors import UserError


class Results:
    """The finished runs of a results directory.

    ``runs``: one dict per ``result.json`` (failed cells included, with their error);
    ``leaderboard(metric)``: the aggregated rows the leaderboard shows (mean over seeds, ranks, gains);
    ``to_pandas(metric)``: those rows as a ``pandas.DataFrame`` with the CSV export's columns."""

    def __init__(self, runs: list[dict], directory: Path):
        self.runs, self.directory = runs, Path(directory)

    def __len__(self) -> int:
        return len(self.runs)

    def __repr__(self) -> str:
        ok = sum(r.get("status") == "ok" for r in self.runs)
        return f"Results({len(self.runs)} runs, {ok} ok, from {str(self.directory)!r})"

    def _runs(self, metric: str) -> list[dict]:
        from tlbench.report.metric_view import check_metric, with_metric

        return with_metric(self.runs, self.directory, check_metric(metric))[0]

    def leaderboard(self, metric: str = "acc") -> list[dict]:
        from tlbench.report.leaderboard import aggregate

        return [{k: v for k, v in row.items() if not k.startswith("_")} for row in aggregate(self._runs(metric))]

    def to_pandas(self, metric: str = "acc"):
        """A DataFrame of :meth:`leaderboard` with exactly the columns of ``tlbench leaderboard
        --format csv --columns all`` (pandas is the optional ``tlbench[pandas]`` extra)."""
        try:
            import pandas as pd
        except ImportError:
            raise UserError("Results.to_pandas() needs pandas: pip install 'tlbench[pandas]'") from None
        from tlbench.report.formats import csv_fields
        from tlbench.report.leaderboard import aggregate, choose_columns

        rows = aggregate(self._runs(metric))
        fields = csv_fields(choose_columns("all", rows))
        flat = [{**row, "provenance": "; ".join(f"{k}: {v}" for k, v in row["provenance"].items())} for row in rows]
        return pd.DataFrame([{f: r.get(f) for f in fields} for r in flat], columns=fields)


def load_results(results_dir) -> Results:
    """Every result under ``results_dir`` (``DIR/<run>/result.json``) as :class:`Results`."""
    from tlbench.execution.results import scan_results

    directory = Path(results_dir)
    if not directory.is_dir():
        raise UserError(f"results directory {str(directory)!r} does not exist")
    return Results(scan_results(directory)[0], directory)
