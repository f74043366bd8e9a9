"""Has training finished? A plateau test on the recorded loss trace (pure Python, no torch).

The test reads the *supervised* terms (``source_ce``, ``target_ce``, a strategy's ``source`` loss):
an adversarial adaptation term is a two-player game whose value settles at an equilibrium and
whose weight ramps up by design, so the total loss of DANN/CDAN need not fall even when the
classifier has converged. Without supervised terms the total loss is used.
"""

from __future__ import annotations

SUPERVISED_TERMS = ("source_ce", "target_ce", "source")
LOW_LOSS = 0.05           # below this the loss counts as flat whatever its slope
LAST_SHARE = 0.10         # the last quarter may add at most this share of the whole run's decrease


def supervised_trace(term_trace: dict | None, loss_trace: list | None) -> list[float]:
    """Window means of the supervised loss terms summed (or of the total loss when there are none)."""
    terms = [term_trace[k] for k in SUPERVISED_TERMS if term_trace and k in term_trace]
    if not terms:
        return [value for _, value in (loss_trace or [])]
    return [sum(points) for points in zip(*[[value for _, value in t] for t in terms])]


def has_flattened(values: list[float]) -> bool | None:
    """True when the last quarter of ``values`` lowered the loss by at most ``LAST_SHARE`` of the
    decrease from the first point to the last quarter (or the loss is below ``LOW_LOSS``); None when
    the trace is too short (fewer than 8 points) to tell."""
    if len(values) < 8:
        return None
    q = len(values) // 4
    last = sum(values[-q:]) / q
    before = sum(values[-2 * q:-q]) / q
    if last < LOW_LOSS:
        return True
    whole_drop = values[0] - last
    return before - last <= LAST_SHARE * max(whole_drop, 0.0)
