"""Fitting the default rich leaderboard to the terminal: the width each column needs (cells never
cut, headers wrapped at spaces), which columns to leave out first, and the wrapped headers.

Columns leave in :data:`DROP_ORDER` (timing and size first, the deployment columns last);
``rank`` and ``acc`` always stay. The table then never asks rich for more than the terminal
width, so rich has no reason to squeeze or cut a cell."""

from __future__ import annotations

import textwrap

DROP_ORDER = ("onnx_mb", "train_s", "source_acc", "gain_control", "ci", "int8_ms", "gain_none", "gain", "ort_ms",
              "int8_acc", "parity")
CELL_OVERHEAD = 3  # rich's padding on both sides and one border


def column_width(header: str, texts: list[str]) -> int:
    """Characters a column takes: its widest cell or its header's longest word, plus overhead."""
    words = max((len(w) for w in header.split()), default=0)
    return max([words, *(len(t) for t in texts)]) + CELL_OVERHEAD


def fit_keys(keys: list[str], widths: dict[str, int], fixed: int, width: int) -> tuple[list[str], list[str]]:
    """(the ``keys`` that fit in ``width`` beside ``fixed`` characters of id columns, those left out)."""
    kept, dropped = list(keys), []
    for key in DROP_ORDER:
        if 1 + fixed + sum(widths[k] for k in kept) <= width:
            break
        if key in kept:
            kept.remove(key)
            dropped.append(key)
    return kept, dropped


def wrap_header(header: str, width: int) -> str:
    """``header`` on as many lines as it takes to stay within the column's cell width."""
    return "\n".join(textwrap.wrap(header, max(1, width - CELL_OVERHEAD), break_long_words=False)) or header
