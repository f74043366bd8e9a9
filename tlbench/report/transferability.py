"""The leaderboard's "how well would ranking have predicted this grid" section."""

from __future__ import annotations

from collections import defaultdict

from tlbench.report.selection import main_table_runs
from tlbench.transferability.correlation import MIN_CANDIDATES, correlations
from tlbench.settings.train import LAST_STEP

CAPTION = (
    "Each estimator scored every candidate (backbone x source model) on the cell's labeled target examples "
    "before fine-tuning; tau = Kendall's tau-b between those scores and the fine-tuned target accuracy "
    "(means over seeds), weighted tau = scipy's weightedtau (swaps near the top cost more), 1 = the "
    "estimator ranked the candidates exactly as fine-tuning did, 0 = no better than chance. picked = its "
    "top candidate; regret = points of accuracy lost against the best candidate it scored. "
    f"Groups with fewer than {MIN_CANDIDATES} scored candidates are left out."
)
COLUMNS = ("estimator", "candidates", "Kendall tau", "weighted tau", "picked", "regret (pts)")
CSV_FIELDS = ("target", "shots", "strategy", "loss", "model_selection", "estimator", "candidates", "of",
              "kendall_tau", "weighted_tau", "picked", "picked_acc", "best_acc", "regret")


def _num(value) -> str:
    return "-" if value is None else f"{value:+.2f}"


def correlation_groups(results: list[dict]) -> dict[str, list[dict]]:
    """Title -> that group's correlation rows (best Kendall tau first), one group per target,
    shots, strategy, loss and model selection; search trials count only where ``--select``
    picked them, as in the main table. Empty when no group has enough scored candidates."""
    groups = defaultdict(list)
    for row in correlations(main_table_runs(results)):
        groups[(row["target"], row["shots"], row["strategy"], row["loss"], row["model_selection"])].append(row)
    out = {}
    for (target, shots, strategy, loss, selection), rows in groups.items():
        title = (f"transferability estimators vs fine-tuned accuracy: {target}, shots {shots}, "
                 f"{strategy} + {loss}" + ("" if selection == LAST_STEP else f", selection {selection}"))
        out[title] = sorted(rows, key=lambda r: -(r["kendall_tau"] if r["kendall_tau"] is not None else -2))
    return out


def _cells(row: dict) -> list[str]:
    """The displayed cells of one row, in ``COLUMNS`` order."""
    return [row["estimator"], f"{row['candidates']}/{row['of']}", _num(row["kendall_tau"]),
            _num(row["weighted_tau"]), row["picked"], "-" if row["regret"] is None else f"{100 * row['regret']:.1f}"]


def render_transferability(results: list[dict], console) -> None:
    """One rich table per target, shots, strategy and loss; prints nothing without enough
    scored candidates (grids of one backbone and source)."""
    from rich.table import Table

    for title, rows in correlation_groups(results).items():
        table = Table(title=title, caption=CAPTION, title_justify="left", caption_justify="left")
        for column in COLUMNS:
            table.add_column(column, justify="left" if column in ("estimator", "picked") else "right")
        for row in rows:
            table.add_row(*_cells(row))
        console.print(table)


def markdown_section(results: list[dict]) -> list[str]:
    """The section as Markdown lines (none without enough scored candidates)."""
    groups = correlation_groups(results)
    if not groups:
        return []
    lines = ["## Transferability estimators vs fine-tuned accuracy", "", f"_{CAPTION}_", ""]
    for title, rows in groups.items():
        lines += [f"### {title.split(': ', 1)[1]}", "", "| " + " | ".join(COLUMNS) + " |",
                  "|---|---:|---:|---:|---|---:|"]
        lines += ["| " + " | ".join(cell.replace("|", "/") for cell in _cells(row)) + " |" for row in rows]
        lines.append("")
    return lines


def json_section(results: list[dict]) -> dict:
    """The section for the JSON export: the caption and every row with its raw numbers."""
    return {"caption": CAPTION, "rows": [row for rows in correlation_groups(results).values() for row in rows]}


def csv_section(results: list[dict]) -> str | None:
    """The rows as their own csv table (None without any): the leaderboard csv has one row per cell."""
    import csv
    import io

    rows = json_section(results)["rows"]
    if not rows:
        return None
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def html_section(results: list[dict]) -> list[str]:
    """The section as HTML fragments for tlbench.report.html (sortable like the leaderboard)."""
    import html

    groups = correlation_groups(results)
    if not groups:
        return []
    parts = ["<h2>Transferability estimators vs fine-tuned accuracy</h2>"]
    for title, rows in groups.items():
        parts.append(f"<h3>{html.escape(title.split(': ', 1)[1])}</h3>")
        parts.append('<div class="scroll"><table class="lb"><thead><tr>'
                     + "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS) + "</tr></thead><tbody>")
        for row in rows:
            sort_values = [row["estimator"], str(row["candidates"]), *(repr(v) if v is not None else ""
                           for v in (row["kendall_tau"], row["weighted_tau"])), row["picked"], "" if row["regret"] is None else repr(row["regret"])]
            parts.append("<tr>" + "".join(
                f'<td class="{"" if i in (0, 4) else "num"}" data-v="{html.escape(v)}">{html.escape(text)}</td>'
                for i, (text, v) in enumerate(zip(_cells(row), sort_values))) + "</tr>")
        parts.append("</tbody></table></div>")
    parts.append(f'<p class="caption">{html.escape(CAPTION)}</p>')
    return parts


def _score_text(row: dict, name: str) -> str:
    score = row["scores"].get(name)
    seconds = row.get("seconds", {}).get(name)
    timing = "" if seconds is None else f" ({1000 * seconds:.0f} ms)"
    if score is None:
        return "n/a" if "not applicable" in row.get("errors", {}).get(name, "") else "error" + timing
    return f"{score:.3f}{timing}"


def render_rank(rows: list[dict], target: str, spec, by: str, names: list[str], console) -> None:
    """The ``tlbench rank`` table: candidates best first by ``by``, every score with its time."""
    from rich.table import Table

    from tlbench.transferability.cell import labels_from

    table = Table(title=f"candidates for {target}, ranked by {by} (higher = should transfer better)",
                  title_justify="left", caption_justify="left",
                  caption=f"Labels: {labels_from(spec.shots)}, seed {spec.seed}; never the test split. Each score "
                          "is followed by the time it took; features = one forward pass of the source model over them. "
                          "n/a = the estimator needs a source classifier this candidate lacks.")
    for column in ("#", "backbone", "source", "source model", "features"):
        table.add_column(column, justify="right" if column in ("#", "features") else "left")
    for name in names:
        table.add_column(f"[bold]{name}[/]" if name == by else name, justify="right")
    for row in rows:
        origin = row["source_model"] + (f" {row['source_seconds']:.1f}s" if row["source_model"] == "trained" else "")
        table.add_row(str(row["rank"] or "-"), row["backbone"], row["source"], origin,
                      f"{row['examples']}x{row['feature_dim']} ({row['feature_seconds']:.2f}s)",
                      *[_score_text(row, name) for name in names])
    console.print(table)
    errors = {(row["candidate"], name): why for row in rows for name, why in row.get("errors", {}).items()
              if not why.startswith("not applicable")}
    for (candidate, name), why in errors.items():
        console.print(f"[red]{name} on {candidate} failed[/]: {why}")
