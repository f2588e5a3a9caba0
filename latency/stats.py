"""Robust latency statistics, kept as numbers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class LatencyStats:
    """Summary of per-invoke latencies in microseconds."""

    median_us: float
    p10_us: float
    p90_us: float
    iqr_us: float
    mean_us: float
    std_us: float
    n: int

    @property
    def spread(self) -> float:
        """Relative width of the middle 80%: (p90 - p10) / median."""
        return (self.p90_us - self.p10_us) / self.median_us

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def summarize(samples_us: Sequence[float] | np.ndarray) -> LatencyStats:
    x = np.asarray(samples_us, dtype=np.float64)
    if x.size == 0:
        raise ValueError("no samples to summarize")
    p10, q1, med, q3, p90 = np.percentile(x, [10, 25, 50, 75, 90])
    return LatencyStats(
        median_us=float(med),
        p10_us=float(p10),
        p90_us=float(p90),
        iqr_us=float(q3 - q1),
        mean_us=float(x.mean()),
        std_us=float(x.std(ddof=1)) if x.size > 1 else 0.0,
        n=int(x.size),
    )


def relative_spread(values: Sequence[float]) -> float:
    """Interquartile range / median of a few repeat medians: how much repeats disagree,
    robust to one disturbed round."""
    x = np.asarray(values, dtype=np.float64)
    q1, med, q3 = np.percentile(x, [25, 50, 75])
    return float((q3 - q1) / med)
