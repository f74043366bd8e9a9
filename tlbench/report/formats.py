"""The leaderboard as text: csv, Markdown, JSON and the self-contained HTML page."""

from __future__ import annotations

import csv
import io
import json

from tlbench.plugin.errors import first_line
from tlbench.report.html import render_html
from tlbench.report.robust import robust_markdown, robust_summary
from tlbench.report.leaderboard import (
    COLUMNS, ID_COLUMNS, NEG_RULE, ROW_KEYS, TIE_RULE, aggregate, caption, choose_columns, failure_cell, failures,
    id_text, mark, pair_groups, show_selection_column,
)
from tlbench.report.selection import selection_markdown, selection_rows
from tlbench.report.transferability import html_section, json_section, markdown_section

EXPORT_COLUMNS = ROW_KEYS + ("seeds", "rank", "best", "tie_with_best")


def csv_fields(keys: list[str]) -> list[str]:
    """The CSV export's column names for the leaderboard columns ``keys`` (also the Python API's)."""
    fields = list(EXPORT_COLUMNS)
    for key in keys:
        fields += [f for f in COLUMNS[key].fields if f not in fields]
    return fields


def _csv(rows: list[dict], keys: list[str]) -> str:
    fields = csv_fields(keys)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        flat = dict(row)
        flat["provenance"] = "; ".join(f"{k}: {v}" for k, v in row["provenance"].items())
        writer.writerow(flat)
    return buffer.getvalue()


def _md_cell(text: str) -> str:
    return text.replace("|", "/")


def _markdown(rows: list[dict], keys: list[str], failed: list[dict], section: list[str]) -> str:
    lines = []
    for pair, group in pair_groups(rows).items():
        ids = list(ID_COLUMNS) + (["model_selection"] if show_selection_column(group) else [])
        headers = ids + [COLUMNS[k].header for k in keys]
        lines += [f"### {pair}", "", f"_{caption(group)}_", "", "| " + " | ".join(headers) + " |",
                  "|" + "|".join("---:" if i >= len(ids) and COLUMNS[keys[i - len(ids)]].numeric else "---" for i in range(len(headers))) + "|"]
        for r in group:
            cells = []
            for key in keys:
                text = COLUMNS[key].text(r)
                if key == "acc" and mark(r) == "best":
                    text = f"**★ {text}**"
                elif key == "acc" and mark(r) == "tie":
                    text = f"≈ {text}"
                elif key == "gain" and r["negative_transfer_clear"]:
                    text = f"**{text}**"
                cells.append(_md_cell(text))
            lines.append("| " + " | ".join([_md_cell(id_text(r, c)) for c in ids] + cells) + " |")
        lines.append("")
    if failed:
        lines += ["### failed runs", "", "| run_id | cell | status | error |", "|---|---|---|---|"]
        for f in failed:
            lines.append(f"| {f['run_id']} | {failure_cell(f)} | {f['status']} | {_md_cell(first_line(f['error'] or '', None))} |")
    if section:  # estimators vs fine-tuned accuracy, after the tables
        lines += ([""] if failed else []) + section
    return "\n".join(lines) + "\n"


FORMATS = ("csv", "md", "json", "html")


from tlbench.report.heldout import heldout_markdown  # noqa: E402


def export(results: list[dict], fmt: str, columns: str | None = None, plots: dict | None = None) -> str:
    """The aggregated leaderboard as ``csv``, ``md``, ``json`` or ``html`` text.

    ``columns`` picks the columns of csv/md/html (see ``choose_columns``); json holds every field.
    ``plots`` ({title: PNG path}) are embedded in the html page. md, json and html also hold the
    estimator-vs-accuracy section (tlbench.report.transferability); csv has it in its own file
    (``export_all``), since a csv holds one table. md and json also hold the search-selection
    tables (tlbench.report.selection) when the results contain search trials.
    """
    rows = aggregate(results)
    if fmt == "json":
        notes = {"tie_rule": TIE_RULE, "negative_transfer_rule": NEG_RULE,
                 "captions": {pair: caption(group) for pair, group in pair_groups(rows).items()}}
        return json.dumps({"leaderboard": rows, "failures": failures(results), "notes": notes,
                           "transferability": json_section(results), "selection": selection_rows(results),
                           "robust": robust_summary(results)}, indent=2) + "\n"
    keys = choose_columns(columns, rows)
    if fmt == "csv":
        return _csv(rows, keys)
    if fmt == "md":
        selection = selection_markdown(results)  # search trials: each validator's pick and regret
        sections = markdown_section(results)
        robust = robust_markdown(robust_summary(results))  # IQM and P(improve) over several pairs
        if robust:
            sections += ["", *robust]
        heldout = heldout_markdown(rows)  # leave-one-domain-out cells in DomainBed's table shape
        if heldout:
            sections += ["", *heldout]
        if selection:
            sections += ["", "## Model selection over search trials", "", *selection.rstrip("\n").split("\n")]
        return _markdown(rows, keys, failures(results), sections)
    if fmt == "html":
        return render_html(rows, keys, failures(results), plots or {}, sections=html_section(results))
    raise ValueError(f"unknown format {fmt!r}")
