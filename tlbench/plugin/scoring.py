"""Scoring with every plugin of a kind (validators, estimators): one number each, or why not.

A plugin that raises, returns something other than a finite number, or lacks an input it needs
costs its own score, never the caller's run.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Iterable

from tlbench.plugin.errors import UserError, first_line


class NotApplicable(Exception):
    """Raised by a ``score_one`` callback: this plugin cannot score here (an input it needs is
    missing); the message says why."""


@dataclass(frozen=True)
class Scored:
    """One plugin's outcome: ``value`` (a finite float) or ``why`` there is none; ``seconds``
    the call took (None when it was not applicable)."""

    value: float | None
    why: str | None = None
    applicable: bool = True
    seconds: float | None = None


def score_each(names: Iterable[str], score_one: Callable[[str], object]) -> dict[str, Scored]:
    """``{name: Scored}`` for each name, in order, from ``score_one(name)`` (the plugin's raw
    score). Why there is no value: a :class:`NotApplicable`'s message; a UserError's own
    message; another exception's :func:`~tlbench.plugin.errors.first_line`; or
    ``returned VALUE`` for a non-finite number."""
    out = {}
    for name in names:
        start = time.perf_counter()
        try:
            value, why = float(score_one(name)), None
        except NotApplicable as exc:
            out[name] = Scored(None, str(exc), applicable=False)
            continue
        except UserError as exc:  # meant for the user: its own words
            value, why = None, str(exc)
        except Exception as exc:  # noqa: BLE001 - a plugin's failure is recorded, never fatal
            value, why = None, first_line(exc)
        seconds = round(time.perf_counter() - start, 6)
        if value is not None and not math.isfinite(value):
            value, why = None, f"returned {value}"
        out[name] = Scored(value, why, seconds=seconds)
    return out
