"""Write every leaderboard format and every plot of a results directory in one go."""

from __future__ import annotations

import tempfile
from pathlib import Path

from tlbench.report import formats, leaderboard
from tlbench.report.plots import PLOT_FILES, PLOT_TITLES, write_plots
from tlbench.report.transferability import csv_section


def html_with_plots(results: list[dict], columns: str | None = None, plot_dir=None) -> str:
    """The HTML page with every plot embedded; plots are drawn into ``plot_dir`` (or a temp dir)."""
    rows = leaderboard.aggregate(results)
    with tempfile.TemporaryDirectory(prefix="tlbench-plots-") as tmp:
        directory = Path(plot_dir or tmp)
        write_plots(rows, directory, results)
        plots = {PLOT_TITLES[k]: directory / name for k, name in PLOT_FILES.items()}
        return formats.export(results, "html", columns=columns, plots=plots)


def export_all(results: list[dict], outdir, columns: str | None = None) -> list[Path]:
    """``leaderboard.{md,csv,json,html}`` and the PNG plots under ``outdir`` (and
    ``transferability.csv`` when estimators ranked enough candidates); returns the paths."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    written = write_plots(leaderboard.aggregate(results), outdir, results)
    for fmt in ("md", "csv", "json"):
        path = outdir / f"leaderboard.{fmt}"
        path.write_text(formats.export(results, fmt, columns=columns), encoding="utf-8")
        written.append(path)
    section = csv_section(results)  # estimators vs fine-tuned accuracy: a table of its own
    if section is not None:
        path = outdir / "transferability.csv"
        path.write_text(section, encoding="utf-8")
        written.append(path)
    path = outdir / "leaderboard.html"
    path.write_text(html_with_plots(results, columns, plot_dir=outdir), encoding="utf-8")
    written.append(path)
    return written
