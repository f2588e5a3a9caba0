"""The two objectives of the search, tabulated before it and evaluated for many genomes at
once: the latency model (per-slot tables over input-channel states, priced by a
:class:`~nas.core.pricing.BlockPricer`) and the BKD surrogate; plus the non-dominated sort
that extracts a front. numpy only."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nas.core.errors import SearchError
from nas.core.pricing import BlockPricer
from nas.core.spaces import SearchSpace
from nas.core.specs import BlockSpec


@dataclass(frozen=True, eq=False)
class LatencyModel:
    """Exact latency (µs) of every genome of one space, from per-block prices.

    ``slot_us[i][s, g]``: latency of slot ``i``'s blocks for option ``g`` when its input has the
    channel count ``in_chs[i][s]``; ``next_state[i][g]``: the state of slot ``i + 1`` (or of the
    head) after option ``g``; ``head_us[s]``: the head after the last slot in state ``s``.
    """

    stem_us: float
    in_chs: tuple[tuple[int, ...], ...]
    slot_us: tuple[np.ndarray, ...]
    next_state: tuple[np.ndarray, ...]
    head_us: np.ndarray

    @property
    def additive(self) -> bool:
        """True when every slot has one input state: latency = stem + sum of slots + head."""
        return all(len(c) == 1 for c in self.in_chs)

    def evaluate(self, genomes: np.ndarray) -> np.ndarray:
        """Latency in µs of each row of ``genomes`` (shape (n, n_slots), option indices)."""
        x = np.asarray(genomes, dtype=np.int64)
        state = np.zeros(len(x), dtype=np.int64)
        lat = np.full(len(x), self.stem_us, dtype=float)
        for i, table in enumerate(self.slot_us):
            g = x[:, i]
            lat += table[state, g]
            state = self.next_state[i][g]
        return lat + self.head_us[state]

    def fastest(self) -> tuple[float, list[int]]:
        """The lowest latency (µs) of any genome and one genome reaching it (exact DP)."""
        best = np.array([self.stem_us])
        back: list[tuple[np.ndarray, np.ndarray]] = []
        for i, table in enumerate(self.slot_us):
            cand = best[:, None] + table  # (states, options)
            n_next = int(self.next_state[i].max()) + 1
            nxt = np.full(n_next, np.inf)
            arg_s = np.zeros(n_next, dtype=np.int64)
            arg_g = np.zeros(n_next, dtype=np.int64)
            for g in range(table.shape[1]):
                t = self.next_state[i][g]
                s = int(np.argmin(cand[:, g]))
                if cand[s, g] < nxt[t]:
                    nxt[t], arg_s[t], arg_g[t] = cand[s, g], s, g
            back.append((arg_s, arg_g))
            best = nxt
        total = best + self.head_us
        state = int(np.argmin(total))
        genome = []
        for arg_s, arg_g in reversed(back):
            genome.append(int(arg_g[state]))
            state = int(arg_s[state])
        return float(total.min()), genome[::-1]


@dataclass(frozen=True)
class _StateSpecs:
    """Every block of a space by input-channel state: ``slots[i][s][g]`` are slot ``i``'s
    blocks for option ``g`` in state ``s`` (input channels ``states[i][s]``)."""

    states: list[list[int]]  # per slot, then (last) the head's
    next_state: list[np.ndarray]
    slots: list[list[list[list[BlockSpec]]]]


def _state_specs(space: SearchSpace) -> _StateSpecs:
    states: list[list[int]] = [[space.stem_chs]]
    next_state: list[np.ndarray] = []
    slots: list[list[list[list[BlockSpec]]]] = []
    for i, opts in enumerate(space.options):
        slots.append([[space.slot_blocks(i, o, c) for o in opts] for c in states[i]])
        outs = list(dict.fromkeys(space.stage_chs(i, o.width) for o in opts))
        next_state.append(np.array([outs.index(space.stage_chs(i, o.width)) for o in opts]))
        states.append(outs)
    return _StateSpecs(states, next_state, slots)


def latency_model(space: SearchSpace, pricer: BlockPricer) -> LatencyModel:
    """Price every block the space can contain in one call and tabulate it.

    ``pricer``: any :class:`~nas.core.pricing.BlockPricer` in µs (a
    :class:`~lut.table.LatencyTable`, a :class:`~latency.estimator.LatencyEstimator` in any
    mode)."""
    if not isinstance(pricer, BlockPricer):
        raise SearchError(
            f"cannot price blocks with a {type(pricer).__name__}; pass a block pricer in µs "
            "(a LatencyEstimator or a LatencyTable)"
        )
    tab = _state_specs(space)
    stem = space.stem_spec()
    heads = [space.head_spec(c) for c in tab.states[-1]]
    flat: list[BlockSpec] = [stem]
    flat += [b for slot in tab.slots for row in slot for opt in row for b in opt]
    flat += heads
    unique = list(dict.fromkeys(flat))
    price = dict(zip(unique, (float(v) for v in pricer.block_costs(unique))))
    slot_us = tuple(
        np.array([[sum(price[b] for b in opt) for opt in row] for row in slot])
        for slot in tab.slots
    )
    return LatencyModel(
        stem_us=price[stem],
        in_chs=tuple(tuple(s) for s in tab.states[:-1]),
        slot_us=slot_us,
        next_state=tuple(tab.next_state),
        head_us=np.array([price[h] for h in heads]),
    )


def loss_arrays(losses: Sequence[Sequence[float]]) -> tuple[np.ndarray, ...]:
    """Per-slot losses (``losses[slot][option]``) as float arrays."""
    return tuple(np.asarray(x, dtype=float) for x in losses)


def surrogate(losses: Sequence[np.ndarray], genomes: np.ndarray) -> np.ndarray:
    """Summed per-slot loss of each genome (rows of ``genomes``)."""
    x = np.asarray(genomes, dtype=np.int64)
    total = np.zeros(len(x))
    for i, arr in enumerate(losses):
        total += arr[x[:, i]]
    return total


def nondominated(loss: np.ndarray, latency: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated points (minimising both), sorted by latency then loss.
    Identical points are all kept."""
    order = np.lexsort((loss, latency))
    keep: list[int] = []
    best = math.inf
    for k in order:
        if loss[k] < best:
            keep.append(int(k))
            best = float(loss[k])
        elif keep and loss[k] == loss[keep[-1]] and latency[k] == latency[keep[-1]]:
            keep.append(int(k))
    return np.array(keep, dtype=np.int64)
