"""The experiments' defaults, defined once (the CLI shows them)."""

from __future__ import annotations

# The filter sweep: every (threshold, loss tolerance) pair is one filtered space.
FILTER_SWEEP_THRESHOLDS: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0)
FILTER_SWEEP_TOLERANCES: tuple[float, ...] = (0.05, 0.1, 0.2, 0.5, 1.0)
# Beyond the paper: keep at most K options per slot, from the slot's Pareto front.
THIN_KEEPS: tuple[int, ...] = (12, 10, 8, 6, 5, 4, 3, 2)
# What "shrinks the space without losing good models" means in the report.
TARGET_SHRINK = 10.0  # at least 10x fewer architectures ...
TARGET_HV_LOSS = 0.01  # ... while losing under 1% of the front's hypervolume

COST_PICKS = 5  # architectures measured from each front of the cost experiment
