"""bench/drift_reference.py's arithmetic on synthetic passes: a correction by a reference that
slows with the nets takes a pass's level away; no correction keeps it."""

from __future__ import annotations

import numpy as np
import pytest


def synthetic_pass(slow_nets: float, slow_block: float, rng: np.random.Generator) -> dict:
    """15 rounds: the block (1.0), the reference network (10.0) and 4 nets, the network and
    the nets slowed by ``slow_nets``, the block by ``slow_block``."""
    base = np.array([1.0, 10.0, 5.0, 8.0, 12.0, 20.0])
    factor = np.array([slow_block, *[slow_nets] * 5])
    warm = [(base * factor * (1 + 0.001 * rng.standard_normal(6))).tolist() for _ in range(15)]
    return {"warm": warm, "cold": [[v * 1.5 for v in row] for row in warm]}


def test_levels_follow_the_reference_that_moves_with_the_nets(bench_script):
    bench, rng = bench_script("drift_reference"), np.random.default_rng(0)
    passes = [synthetic_pass(1.0, 1.0, rng), synthetic_pass(1.2, 1.0, rng)]
    none = bench.levels(passes, "none")
    low, high = none["pass_levels"]
    assert (1 + high) / (1 + low) == pytest.approx(1.2, abs=0.01)
    assert bench.levels(passes, "network-warm")["level_sd"] < 0.002  # the network slowed too
    block = bench.levels(passes, "block-warm")  # the block did not: it corrects nothing
    assert block["level_sd"] == pytest.approx(none["level_sd"], rel=0.01)
    for correction in bench.CORRECTIONS:  # a common level leaves nothing per net
        assert bench.levels(passes, correction)["per_net_sd"] < 0.003
