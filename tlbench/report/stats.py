"""Statistics over seeds: mean, sample standard deviation and a t-distribution confidence interval."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

CONFIDENCE = 0.95
# Two-sided 95% critical values of Student's t for 1..30 degrees of freedom (used without scipy).
_T95 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)


def t_critical(df: int, confidence: float = CONFIDENCE) -> float:
    """Two-sided critical value of Student's t with ``df`` degrees of freedom."""
    if df < 1:
        raise ValueError("a t interval needs at least two values (df >= 1)")
    try:
        from scipy.stats import t

        return float(t.ppf(0.5 + confidence / 2, df))
    except ImportError:
        if confidence != CONFIDENCE:
            raise
        return _T95[df - 1] if df <= len(_T95) else 1.960


@dataclass(frozen=True)
class Summary:
    """Mean, sample std and the t confidence interval of a handful of seeds.

    With one value the std is 0 and the interval is unknown (``None`` bounds).
    """

    n: int
    mean: float
    std: float
    ci_low: float | None
    ci_high: float | None

    @property
    def half_width(self) -> float | None:
        return None if self.ci_low is None else (self.ci_high - self.ci_low) / 2


def summarize(values, confidence: float = CONFIDENCE) -> Summary | None:
    """Summary of the non-missing ``values``, or None when there are none."""
    values = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not values:
        return None
    mean = statistics.fmean(values)
    if len(values) < 2:
        return Summary(1, mean, 0.0, None, None)
    std = statistics.stdev(values)
    half = t_critical(len(values) - 1, confidence) * std / math.sqrt(len(values))
    return Summary(len(values), mean, std, mean - half, mean + half)


def intervals_overlap(a: Summary, b: Summary) -> bool:
    """Whether two summaries' confidence intervals overlap; without intervals, whether the means are equal."""
    if a.ci_low is None or b.ci_low is None:
        return a.mean == b.mean
    return a.ci_low <= b.ci_high and b.ci_low <= a.ci_high
