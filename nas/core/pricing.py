"""One pricer protocol for "a LUT, a latency estimator or MACs": what the filter and the search
ask of a cost source.

A pricer prices many blocks in one call, so a LUT that lacks blocks names every missing one in
one error and an estimator in ``measure`` mode measures them once. Implementations:
:class:`lut.table.LatencyTable` and :class:`latency.estimator.LatencyEstimator` (µs, the LUT's
in-network figure), :class:`MacsPricer` (multiply-accumulates, the FLOPs proxy) and
:class:`FunctionPricer` (any function of one block). :func:`as_pricer` turns what a caller
passes (one of those, a function, or ``None`` for MACs) into a pricer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from nas.core.errors import DonnaError
from nas.core.specs import BlockSpec, macs


@runtime_checkable
class BlockPricer(Protocol):
    """Prices blocks: ``block_costs(specs)`` in ``unit``; ``describe()`` says where the figures
    come from (for reports)."""

    unit: str

    def block_costs(self, specs: Sequence[BlockSpec]) -> list[float]: ...

    def describe(self) -> str: ...


class MacsPricer:
    """Multiply-accumulates of each block (:func:`nas.core.specs.macs`)."""

    unit = "MACs"

    def block_costs(self, specs: Sequence[BlockSpec]) -> list[float]:
        return [float(macs(b)) for b in specs]

    def describe(self) -> str:
        return "MACs (no LUT given)"


class FunctionPricer:
    """Any function of one block."""

    unit = "cost"

    def __init__(self, fn: Callable[[BlockSpec], float]) -> None:
        self.fn = fn

    def block_costs(self, specs: Sequence[BlockSpec]) -> list[float]:
        return [float(self.fn(b)) for b in specs]

    def describe(self) -> str:
        return "custom cost function"


CostSource = BlockPricer | Callable[[BlockSpec], float] | None


def as_pricer(cost: CostSource) -> BlockPricer:
    """``cost`` as a :class:`BlockPricer`: ``None`` gives MACs, a function a
    :class:`FunctionPricer`; anything else must already be a pricer."""
    if cost is None:
        return MacsPricer()
    if isinstance(cost, BlockPricer):
        return cost
    if callable(cost):
        return FunctionPricer(cost)
    raise DonnaError(
        f"cannot price blocks with a {type(cost).__name__}; pass a LatencyTable, a "
        "LatencyEstimator, a function of one block, or None for MACs"
    )
