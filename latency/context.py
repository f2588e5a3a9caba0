"""The cache-context model: how a block's isolated timings relate to its cost in a network.

A block timed alone can be in two cache states. *Warm*: invoked back to back, its weights,
activations and the interpreter's own data stay in the CPU caches. *Cold*: each invoke follows
other models' invokes, which evicted all of that. Inside a network a block is in between: its
input was just written by the previous block (hot), but its weights and the interpreter's
per-op data were last touched one whole network pass ago. Summing warm timings underestimates
a network; summing cold timings overestimates it (both measured in ``bench/lut_fidelity.py``).

The model: ``in-network = warm + alpha * (cold - warm)``; ``alpha`` is the share of the cold
penalty a block pays inside a network, one number per device and runtime. It is calibrated on
a few random networks of the space (never the networks a benchmark evaluates on) by least
squares on relative error, clipped to [0, 1], and stored in the LUT's provenance.
``latency-profile`` and ``donna run`` fit it once per LUT, when the LUT holds every block of
its space (:func:`calibrate_if_needed`); a calibrated LUT keeps its model.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from latency.convert import ConvertConfig
from latency.devices import Device
from latency.errors import SettingError
from latency.profiler import measure_architectures, profile_specs
from lut.table import DEFAULT_CONTEXT_ALPHA as DEFAULT_ALPHA
from lut.table import LatencyTable
from nas.core.spaces import SearchSpace, random_genomes
from nas.core.specs import Architecture, spec_key

__all__ = [
    "CALIBRATION_NETS",
    "DEFAULT_ALPHA",
    "Calibration",
    "calibrate",
    "calibrate_if_needed",
    "calibration_nets",
    "check_calibrate_nets",
    "fit_alpha",
    "sums",
]

CALIBRATION_SEED = 1_000_003  # far from seeds used elsewhere, so calibration nets are disjoint
CALIBRATION_NETS = 4  # whole nets a LUT is calibrated on (latency-profile, donna run)


@dataclass(frozen=True)
class Calibration:
    alpha: float
    nets: int
    seed: int
    mape_before: float  # mean abs relative error with the default alpha
    mape_after: float
    seconds: float


def calibration_nets(
    space: SearchSpace,
    n_nets: int = CALIBRATION_NETS,
    seed: int = CALIBRATION_SEED,
    exclude: Sequence[Architecture] = (),
) -> list[Architecture]:
    """The ``n_nets`` random networks of ``space`` a calibration times whole (seeded, so the
    same every time; none of ``exclude``)."""
    banned = set(exclude)
    genomes = random_genomes(space, n_nets + len(banned), seed)
    return [a for a in (space.decode(g) for g in genomes) if a not in banned][:n_nets]


def fit_alpha(warm: Sequence[float], cold: Sequence[float], measured: Sequence[float]) -> float:
    """Least-squares ``alpha`` of ``measured ~ warm + alpha (cold - warm)``, each net weighted
    by 1/measured (relative error), clipped to [0, 1]."""
    w, c, m = (np.asarray(v, dtype=float) for v in (warm, cold, measured))
    d = (c - w) / m
    r = (m - w) / m
    denom = float(d @ d)
    if denom <= 0:
        return 0.0
    return float(np.clip((d @ r) / denom, 0.0, 1.0))


def sums(table: LatencyTable, archs: Sequence[Architecture]) -> tuple[np.ndarray, np.ndarray]:
    """Per-architecture sums of warm and cold block medians."""
    warm, cold = [], []
    for a in archs:
        rows = [table.entries[spec_key(b)] for b in a.blocks]
        warm.append(sum(r["warm_median_us"] for r in rows))
        cold.append(sum(r.get("cold_median_us", r["warm_median_us"]) for r in rows))
    return np.array(warm), np.array(cold)


def calibrate(
    space: SearchSpace,
    device: Device,
    table: LatencyTable,
    convert_config: ConvertConfig,
    n_nets: int = 6,
    seed: int = CALIBRATION_SEED,
    exclude: Sequence[Architecture] = (),
) -> Calibration:
    """Measure ``n_nets`` random networks of ``space`` whole, fit ``alpha``, store it in the
    LUT (re-deriving every entry's ``median_us``)."""
    t0 = time.perf_counter()
    archs = calibration_nets(space, n_nets, seed, exclude)
    profile_specs([b for a in archs for b in a.blocks], device, table, convert_config)
    measured = np.array(
        [m.warm.median_us for m in measure_architectures(archs, device, table, convert_config)]
    )
    warm, cold = sums(table, archs)
    alpha = fit_alpha(warm, cold, measured)

    def mape(a: float) -> float:
        return float(np.mean(np.abs((warm + a * (cold - warm)) / measured - 1.0)))

    before = mape(table.context_alpha)
    cal = Calibration(alpha, len(archs), seed, before, mape(alpha), time.perf_counter() - t0)
    table.set_context(alpha, asdict(cal))
    return cal


def context_line(table: LatencyTable) -> str:
    """The LUT's context model in one line, for people."""
    ctx = table.provenance.get("context")
    if not ctx:
        return f"context model: not calibrated (alpha {DEFAULT_ALPHA} default)"
    line = f"context model: alpha {float(ctx['alpha']):.2f}"
    if "nets" in ctx:
        line += f" from {ctx['nets']} whole nets"
    if "mape_before" in ctx and "mape_after" in ctx:
        line += (
            f"; mean abs error {ctx['mape_before'] * 100:.1f}% -> {ctx['mape_after'] * 100:.1f}%"
        )
    return line


def check_calibrate_nets(n_nets: int) -> None:
    """Refuse a count of calibration nets that is not a whole number >= 0."""
    if isinstance(n_nets, bool) or not isinstance(n_nets, int) or n_nets < 0:
        raise SettingError(f"calibrate_nets must be a whole number >= 0 (0 skips), got {n_nets!r}")


def calibrate_if_needed(
    space: SearchSpace,
    device: Device,
    table: LatencyTable,
    convert_config: ConvertConfig,
    n_nets: int = CALIBRATION_NETS,
    echo: Callable[[str], None] | None = None,
) -> str:
    """Fit the LUT's context model once: on ``n_nets`` whole networks of ``space`` when the
    LUT holds every block of it and has no context model yet (a calibrated LUT keeps its
    own; 0 nets skips). Returns one line for people: the fit, the kept model, or why not
    (``echo`` gets a line before the nets are timed)."""
    check_calibrate_nets(n_nets)
    if "context" in table.provenance:
        return context_line(table) + " (calibrated before; kept)"
    if n_nets == 0:
        return context_line(table) + "; calibration skipped (--calibrate-nets 0)"
    specs = list(dict.fromkeys(space.block_specs()))
    have = len(specs) - len(table.missing(specs))
    if have < len(specs):
        return (
            f"context model: not calibrated yet (alpha {DEFAULT_ALPHA} default): the LUT holds "
            f"{have} of the {len(specs)} blocks of space {space.name}; profile the rest (the "
            "same command without --limit) and it is calibrated then"
        )
    if echo is not None:
        echo(f"fitting the context model on {n_nets} whole nets of space {space.name} ...")
    calibrate(space, device, table, convert_config, n_nets=n_nets)
    return context_line(table)
