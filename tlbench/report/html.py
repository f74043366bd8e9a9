"""The leaderboard as one self-contained HTML page: inline CSS and JS, sortable tables, PNGs inline."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from tlbench.report.leaderboard import COLUMNS, ID_COLUMNS, caption, id_text, mark, pair_groups, show_selection_column

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1d1d1f; background: #fff; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; }
table.lb { border-collapse: collapse; margin: 8px 0 4px; }
table.lb th, table.lb td { border: 1px solid #d0d4da; padding: 4px 8px; white-space: nowrap; }
table.lb th { background: #24364f; color: #fff; cursor: pointer; user-select: none; }
table.lb th.sorted-asc::after { content: " \\25B2"; } table.lb th.sorted-desc::after { content: " \\25BC"; }
table.lb td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.lb tr:nth-child(even) td { background: #f5f7fa; }
td.best { background: #c8f0c8 !important; font-weight: bold; }
td.tie { background: #e6f7e6 !important; }
td.neg { color: #b00020; } td.neg-clear { color: #fff; background: #c62828 !important; font-weight: bold; }
td.fail { color: #b00020; font-weight: bold; }
p.caption { color: #555; max-width: 1100px; font-size: 12.5px; }
div.scroll { overflow-x: auto; max-width: 100%; }
figure { margin: 16px 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
"""

SCRIPT = """
document.querySelectorAll('table.lb').forEach(function (table) {
  table.querySelectorAll('th').forEach(function (th, index) {
    th.addEventListener('click', function () {
      var body = table.tBodies[0], rows = Array.from(body.rows);
      var asc = !th.classList.contains('sorted-asc');
      table.querySelectorAll('th').forEach(function (h) { h.classList.remove('sorted-asc', 'sorted-desc'); });
      th.classList.add(asc ? 'sorted-asc' : 'sorted-desc');
      rows.sort(function (a, b) {
        var x = a.cells[index].dataset.v, y = b.cells[index].dataset.v;
        var nx = parseFloat(x), ny = parseFloat(y);
        var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def _sort_value(row: dict, key: str) -> str:
    if key in COLUMNS:
        value = row.get(COLUMNS[key].fields[0])
        if COLUMNS[key].numeric or key == "parity":
            return "" if value is None else repr(float(value))
        return COLUMNS[key].text(row)
    if key == "shots":
        return "1e18" if row["shots"] == "all" else str(row["shots"])
    return str(row[key])


def _classes(row: dict, key: str) -> list[str]:
    classes = ["num"] if key in COLUMNS and COLUMNS[key].numeric else []
    if key == "acc" and mark(row):
        classes.append(mark(row))
    if key == "gain" and row["negative_transfer"]:
        classes.append("neg-clear" if row["negative_transfer_clear"] else "neg")
    if key == "parity" and row["onnx_max_abs_diff"] is not None and not row["parity_ok"]:
        classes.append("fail")
    return classes


def _table(group: list[dict], keys: list[str]) -> list[str]:
    ids = list(ID_COLUMNS) + (["model_selection"] if show_selection_column(group) else [])
    out = ['<div class="scroll"><table class="lb"><thead><tr>']
    out += [f"<th>{html.escape(c)}</th>" for c in ids]
    out += [f"<th>{html.escape(COLUMNS[k].header)}</th>" for k in keys]
    out.append("</tr></thead><tbody>")
    for row in group:
        out.append("<tr>")
        for key in ids + keys:
            text = id_text(row, key) if key not in COLUMNS else COLUMNS[key].text(row)
            if key == "acc" and mark(row) == "best":
                text = "★ " + text
            elif key == "acc" and mark(row) == "tie":
                text = "≈ " + text
            cls = " ".join(_classes(row, key))
            out.append(f'<td class="{cls}" data-v="{html.escape(_sort_value(row, key))}">{html.escape(text)}</td>')
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return out


def _image(title: str, path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(title)}</figcaption></figure>")


def render_html(rows: list[dict], keys: list[str], failed: list[dict], plots: dict, title: str = "tlbench leaderboard",
                sections: list[str] = ()) -> str:
    """A complete HTML document with one sortable table per source -> target pair, the HTML
    fragments of further ``sections`` (e.g. estimators vs accuracy) and the plots."""
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{html.escape(title)}</title>",
             f"<style>{STYLE}</style></head><body>", f"<h1>{html.escape(title)}</h1>",
             "<p class=\"caption\">Click a column header to sort.</p>"]
    if not rows:
        parts.append("<p>No successful runs to rank.</p>")
    for pair, group in pair_groups(rows).items():
        parts.append(f"<h2>{html.escape(pair)}</h2>")
        parts += _table(group, keys)
        parts.append(f'<p class="caption">{html.escape(caption(group))}</p>')
    parts += sections
    if plots:
        parts.append("<h2>Plots</h2>")
        parts += [_image(name, path) for name, path in plots.items()]
    if failed:
        parts.append('<h2>Failed or interrupted runs</h2><table class="lb"><thead><tr><th>run_id</th><th>status</th><th>error</th></tr></thead><tbody>')
        for f in failed:
            parts.append(f"<tr><td>{html.escape(str(f['run_id']))}</td><td>{html.escape(str(f['status']))}</td>"
                         f"<td>{html.escape(str(f['error'] or ''))[:300]}</td></tr>")
        parts.append("</tbody></table>")
    parts.append(f"<script>{SCRIPT}</script></body></html>")
    return "\n".join(parts) + "\n"
