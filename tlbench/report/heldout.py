"""Leave-one-domain-out results in DomainBed's table shape: one row per method, one column per
held-out domain (trained on all the others), and the average over the held-out domains.

A leaderboard row belongs to such a table when its target is one domain of a dataset and its
source joins every other domain of that dataset that the results hold as a target (what
``--leave-one-out DATASET`` runs). Each cell is the mean target accuracy over seeds with its
standard error (DomainBed's ``mean ± SE``); the average is left empty until every held-out domain
has a result, as an average over some domains is not comparable with one over all.
"""

from __future__ import annotations

import math
from collections import defaultdict

from tlbench.grid.domains import parse_domain, source_parts

METHOD_KEYS = ("backbone", "strategy", "loss", "shots", "model_selection")


def _dataset_and_domain(value: str) -> tuple[str, str] | None:
    try:
        ref = parse_domain(value)
    except Exception:  # not a DATASET:DOMAIN string: not part of such a table
        return None
    return (ref.dataset, ref.domain) if ref.subset is None else None


def heldout_tables(rows: list[dict]) -> list[dict]:
    """``[{"dataset", "domains", "rows": [{method keys..., "cells": {domain: (mean, se, seeds)}, "average"}]}]``
    from leaderboard rows (tlbench.report.leaderboard.aggregate)."""
    by_dataset: dict[str, list[tuple[str, set, dict]]] = defaultdict(list)
    for row in rows:
        target = _dataset_and_domain(row["target"])
        parts = [_dataset_and_domain(p) for p in source_parts(row["source"])]
        if target is None or len(parts) < 2 or any(p is None or p[0] != target[0] for p in parts):
            continue
        by_dataset[target[0]].append((target[1], {p[1] for p in parts}, row))
    tables = []
    for dataset, entries in sorted(by_dataset.items()):
        domains = sorted({target for target, _, _ in entries})
        methods: dict[tuple, dict] = {}
        for target, sources, row in entries:
            if sources | {target} != set(domains):  # not "every other domain"
                continue
            key = tuple(row[k] for k in METHOD_KEYS)
            method = methods.setdefault(key, {**dict(zip(METHOD_KEYS, key)), "cells": {}})
            std = row.get("target_acc_std")
            se = std / math.sqrt(row["seeds"]) if row["seeds"] > 1 and std is not None else None
            method["cells"][target] = (row["target_acc"], se, row["seeds"])
        if not methods:
            continue
        for method in methods.values():
            full = len(method["cells"]) == len(domains)
            method["average"] = sum(c[0] for c in method["cells"].values()) / len(domains) if full else None
        ordered = sorted(methods.values(), key=lambda m: -(m["average"] if m["average"] is not None else -1.0))
        tables.append({"dataset": dataset, "domains": domains, "rows": ordered})
    return tables


def _cell_text(cell) -> str:
    if cell is None:
        return "-"
    mean, se, _ = cell
    return f"{100 * mean:.1f}" + (f" ± {100 * se:.1f}" if se is not None else "")


def heldout_markdown(rows: list[dict]) -> list[str]:
    """The tables as Markdown lines (empty when the results hold none)."""
    lines = []
    for table in heldout_tables(rows):
        header = ["backbone", "strategy", "loss", "shots", "selection", *table["domains"], "Avg"]
        lines += [f"### {table['dataset']}: leave one domain out (target accuracy %, mean ± SE over seeds)", "",
                  "| " + " | ".join(header) + " |", "|" + "---|" * 5 + "---:|" * (len(table["domains"]) + 1)]
        for m in table["rows"]:
            cells = [_cell_text(m["cells"].get(d)) for d in table["domains"]]
            average = "-" if m["average"] is None else f"{100 * m['average']:.1f}"
            lines.append("| " + " | ".join([str(m[k]) for k in METHOD_KEYS] + cells + [average]) + " |")
        lines.append("")
    return lines


def render_heldout(rows: list[dict], console) -> None:
    """The tables printed with rich (nothing when the results hold none)."""
    from rich.table import Table

    for table in heldout_tables(rows):
        out = Table(title=f"{table['dataset']}: leave one domain out (target accuracy %, mean ± SE over seeds)",
                    title_justify="left", caption="column = the held-out target domain, trained on all the others; "
                    "Avg only when every domain has a result", caption_justify="left")
        for key in ("backbone", "strategy", "loss", "shots", "selection"):
            out.add_column(key)
        for domain in table["domains"]:
            out.add_column(domain, justify="right")
        out.add_column("Avg", justify="right")
        for m in table["rows"]:
            average = "-" if m["average"] is None else f"{100 * m['average']:.1f}"
            out.add_row(*[str(m[k]) for k in METHOD_KEYS], *[_cell_text(m["cells"].get(d)) for d in table["domains"]], average)
        console.print(out)
