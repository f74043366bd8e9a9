"""The default rich table fits the terminal: in 80 and 100 columns no column is cut off, and a
footer names what was left out; one seed shows no '± 0.0'."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from tlbench.execution.results import scan_results
from tlbench.report.leaderboard import COLUMNS, aggregate, render

DEFAULT_GRID = Path(__file__).resolve().parents[2] / "results" / "default-grid" / "runs"


@pytest.mark.parametrize("width", [80, 100])
def test_the_default_table_fits_and_says_what_it_left_out(width):
    results = scan_results(DEFAULT_GRID)[0]
    console = Console(file=io.StringIO(), width=width, record=True, color_system=None)
    render(results, console)
    text = console.export_text()
    assert "…" not in text  # rich cuts a cell it cannot fit with an ellipsis
    assert max(len(line) for line in text.splitlines()) <= width
    footer = [line for line in text.splitlines() if line.startswith("left out to fit")]
    assert len(footer) == 1 and f"fit {width} columns" in footer[0]
    assert "(--columns all shows them)" in " ".join(text.split())
    for row in aggregate(results):
        assert COLUMNS["acc"].text(row) in text  # every accuracy whole, on one line
    assert "± 0.0" not in text  # one seed each: no spread shown
    wide = Console(file=io.StringIO(), width=400, record=True, color_system=None)
    render(results, wide)
    assert "left out to fit" not in wide.export_text()
