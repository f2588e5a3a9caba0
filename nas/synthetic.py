"""Synthetic inputs, clearly labelled as such, for tests and for benchmarks run without a
real BKD library or LUT: a known latency law and BKD-like losses (not measurements)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from lut.table import LatencyTable
from nas.bkd.library import BkdEntry, BkdLibrary
from nas.core.spaces import SearchSpace
from nas.core.specs import BlockSpec, macs


def synthetic_latency(spec: BlockSpec) -> float:
    """Microseconds: MACs plus a fixed per-block cost and an SE overhead."""
    return 5.0 + macs(spec) / 2e4 + (20.0 if getattr(spec, "se_ratio", 0.0) else 0.0)


def synthetic_table(specs: Iterable[BlockSpec], device_id: str = "synthetic") -> LatencyTable:
    """An in-memory LUT (no path, nothing written) priced by :func:`synthetic_latency`."""
    table = LatencyTable({"device": {"id": device_id}, "synthetic": True})
    for s in specs:
        table.add(s, {"warm_median_us": synthetic_latency(s)})
    return table


def synthetic_library(
    space: SearchSpace, seed: int = 0, sha: str = "synthetic", skip: int = 0
) -> BkdLibrary:
    """A BKD-like library: an option's nMSE falls with the MACs of its blocks at the
    mothernet's input channels (:meth:`~nas.core.spaces.SearchSpace.option_blocks`), times
    seeded noise; the first ``skip`` entries are left out (an incomplete library)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    entries: list[Any] = []
    for i, slot in enumerate(space.option_blocks()):
        for o, blocks in zip(space.options[i], slot):
            m = sum(macs(b) for b in blocks)
            nmse = 0.3 * (1e6 / m) ** 0.3 * float(np.exp(rng.normal(0, 0.1)))
            entries.append(BkdEntry(i, o, nmse, nmse, 1.0, nmse, 0, 0.0, extra={"synthetic": 1}))
    return BkdLibrary(space, {"mothernet_sha256": sha, "synthetic": True}, entries[skip:])
