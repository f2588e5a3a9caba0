"""NSGA-II over a (filtered) search space: summed BKD MSE vs estimated latency.

A genome is one option index per slot. Both objectives are computed for the whole population
at once from tables made before the search:

* **surrogate**: ``sum_i nmse[i][g_i]`` from the BKD library (DONNAv2's accuracy surrogate);
* **latency**: ``stem + sum_i slot_i(state_i, g_i) + head(state_n)`` where ``state_i`` is the
  input channel count of slot ``i`` (it depends on the previous slot's width). The per-slot
  tables hold every (input channels, option) pair of the space, priced block by block by the
  latency estimator in one call before the search: in ``lut`` mode every missing block is named
  in one error, in ``measure`` mode the missing blocks are measured once. With one width per
  stage (the quick spaces) there is one state per slot and latency is exactly additive.

pymoo's NSGA-II runs with integer random sampling, SBX crossover and polynomial mutation with a
rounding repair, duplicate elimination and an explicit seed (same seed, same front). A latency
budget is a constraint ``latency <= budget``; a budget below the fastest architecture of the
space (found exactly by dynamic programming over the states) is an error giving that value.
The reported front is the non-dominated feasible set of *every* architecture evaluated during
the search (an archive that contains the final population's front). A space with no more
architectures than the population is enumerated instead (``method: enumeration``).

Heavy imports (pymoo, matplotlib) happen inside the functions that need them.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nas.core.errors import SearchError, SpaceError
from nas.core.files import read_versioned_json
from nas.core.pricing import BlockPricer
from nas.core.spaces import SearchSpace
from nas.core.specs import BlockSpec
from nas.library import BkdLibrary, LibraryError

SCHEMA = "donnav2-pareto"
SCHEMA_VERSION = 1

DEFAULT_POP_SIZE = 100
DEFAULT_GENERATIONS = 50
DEFAULT_SEED = 0
# pymoo's recipe for integer genomes (SBX + PM on floats, then rounded).
CROSSOVER_PROB = 1.0
CROSSOVER_ETA = 3.0
MUTATION_ETA = 3.0
MAX_ENUMERATE = 2_000_000  # exact_front refuses larger spaces

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class SearchConfig:
    pop_size: int = DEFAULT_POP_SIZE
    generations: int = DEFAULT_GENERATIONS
    seed: int = DEFAULT_SEED
    budget_ms: float | None = None

    def __post_init__(self) -> None:
        if self.pop_size < 2:
            raise SearchError(f"pop_size must be >= 2, got {self.pop_size}")
        if self.generations < 1:
            raise SearchError(f"generations must be >= 1, got {self.generations}")
        if self.budget_ms is not None and not (
            self.budget_ms > 0 and math.isfinite(self.budget_ms)
        ):
            raise SearchError(f"budget_ms must be a positive number, got {self.budget_ms}")


# ---- objectives --------------------------------------------------------------------------------


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


def latency_model(space: SearchSpace, pricer: Any) -> LatencyModel:
    """Price every block the space can contain in one call and tabulate it.

    ``pricer``: a :class:`~latency.estimator.LatencyEstimator` (any mode), a
    :class:`~lut.table.LatencyTable`: any :class:`~nas.core.pricing.BlockPricer` in µs."""
    states: list[list[int]] = [[space.stem_chs]]
    next_state: list[np.ndarray] = []
    slot_specs: list[list[list[list[BlockSpec]]]] = []
    for i, opts in enumerate(space.options):
        slot_specs.append([[space.slot_blocks(i, o, c) for o in opts] for c in states[i]])
        outs = list(dict.fromkeys(space.stage_chs(i, o.width) for o in opts))
        next_state.append(np.array([outs.index(space.stage_chs(i, o.width)) for o in opts]))
        states.append(outs)
    stem = space.stem_spec()
    heads = [space.head_spec(c) for c in states[-1]]
    flat: list[BlockSpec] = [stem]
    flat += [b for slot in slot_specs for row in slot for opt in row for b in opt]
    flat += heads
    unique = list(dict.fromkeys(flat))
    if not isinstance(pricer, BlockPricer):
        raise SearchError(
            f"cannot price blocks with a {type(pricer).__name__}; pass a LatencyEstimator or a "
            "LatencyTable"
        )
    price = dict(zip(unique, (float(v) for v in pricer.block_costs(unique))))
    slot_us = tuple(
        np.array([[sum(price[b] for b in opt) for opt in row] for row in slot])
        for slot in slot_specs
    )
    return LatencyModel(
        stem_us=price[stem],
        in_chs=tuple(tuple(s) for s in states[:-1]),
        slot_us=slot_us,
        next_state=tuple(next_state),
        head_us=np.array([price[h] for h in heads]),
    )


def loss_arrays(losses: Sequence[Sequence[float]]) -> tuple[np.ndarray, ...]:
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


# ---- results --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParetoEntry:
    genome: tuple[int, ...]
    options: tuple[str, ...]  # option labels, for people
    blocks: tuple[dict[str, Any], ...]  # Architecture.to_list()
    surrogate: float  # summed normalised BKD MSE
    latency_ms: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "genome": list(self.genome),
            "options": list(self.options),
            "surrogate": self.surrogate,
            "latency_ms": self.latency_ms,
            "blocks": list(self.blocks),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ParetoEntry:
        return cls(
            genome=tuple(int(g) for g in d["genome"]),
            options=tuple(d.get("options", ())),
            blocks=tuple(d["blocks"]),
            surrogate=float(d["surrogate"]),
            latency_ms=float(d["latency_ms"]),
        )


def make_entries(
    space: SearchSpace, genomes: np.ndarray, loss: np.ndarray, latency_ms: np.ndarray
) -> tuple[ParetoEntry, ...]:
    out = []
    for g, s, t in zip(genomes, loss, latency_ms):
        genome = tuple(int(v) for v in g)
        out.append(
            ParetoEntry(
                genome=genome,
                options=tuple(o.label() for o in space.choices(genome)),
                blocks=tuple(space.decode(genome).to_list()),
                surrogate=float(s),
                latency_ms=float(t),
            )
        )
    return tuple(out)


@dataclass(frozen=True, eq=False)
class SearchResult:
    space: SearchSpace
    config: SearchConfig
    front: tuple[ParetoEntry, ...]  # sorted by latency
    evaluated: np.ndarray  # (n, 2): surrogate, latency_ms of every distinct genome evaluated
    fastest_ms: float
    method: str  # "nsga2" or "enumeration"
    seconds: float
    mothernet: tuple[float, float] | None = None  # (surrogate, latency_ms)
    provenance: dict[str, Any] = field(default_factory=dict)

    def at(self, index: int, where: str | Path = "the Pareto file") -> ParetoEntry:
        """Front entry ``index``; an out-of-range index names the valid ones."""
        n = len(self.front)
        if not 0 <= index < n:
            valid = f"0..{n - 1}" if n else "none: the front is empty"
            raise SearchError(
                f"index {index} is out of range for {where}: its front has {n} "
                f"architecture(s), valid indices {valid}"
            )
        return self.front[index]

    def points(self) -> np.ndarray:
        """The front as an (n, 2) array of (surrogate, latency_ms)."""
        return np.array([[e.surrogate, e.latency_ms] for e in self.front]).reshape(-1, 2)

    def summary(self) -> str:
        lines = [
            f"{self.method} on {self.space.name!r} (10^{self.space.log10_size():.2f} "
            f"architectures): {len(self.evaluated)} evaluated in {self.seconds:.2f} s, "
            f"{len(self.front)} on the Pareto front; fastest possible {self.fastest_ms:.3f} ms"
        ]
        for i, e in enumerate(self.front):
            lines.append(
                f"  [{i}] {e.latency_ms:8.3f} ms  surrogate {e.surrogate:.4f}  "
                f"genome {list(e.genome)}"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "version": SCHEMA_VERSION,
            "space": self.space.to_dict(),
            "config": asdict(self.config),
            "method": self.method,
            "seconds": self.seconds,
            "fastest_ms": self.fastest_ms,
            "mothernet": (
                None
                if self.mothernet is None
                else {"surrogate": self.mothernet[0], "latency_ms": self.mothernet[1]}
            ),
            "provenance": self.provenance,
            "n_evaluated": len(self.evaluated),
            "front": [{"index": i, **e.to_dict()} for i, e in enumerate(self.front)],
            "evaluated": {
                "surrogate": [float(v) for v in self.evaluated[:, 0]],
                "latency_ms": [float(v) for v in self.evaluated[:, 1]],
            },
        }

    def save(self, out_dir: str | Path) -> tuple[Path, Path]:
        """Write ``pareto.json`` and ``pareto.png`` into ``out_dir``."""
        from nas.core.files import atomic_write_text

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        path = out / "pareto.json"
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1))
        png = self.plot(out / "pareto.png")
        return path, png

    def plot(self, path: str | Path) -> Path:
        """The front over every evaluated point (faint), the mothernet as a star and the budget
        as a dashed line."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
        try:
            if len(self.evaluated):
                ax.scatter(
                    self.evaluated[:, 1],
                    self.evaluated[:, 0],
                    s=4,
                    c="0.6",
                    alpha=0.25,
                    lw=0,
                    label=f"evaluated ({len(self.evaluated)})",
                )
            pts = self.points()
            ax.plot(
                pts[:, 1],
                pts[:, 0],
                "o-",
                ms=4,
                c="tab:blue",
                drawstyle="steps-post",
                label=f"Pareto front ({len(pts)})",
            )
            if self.mothernet is not None:
                ax.scatter(
                    [self.mothernet[1]],
                    [self.mothernet[0]],
                    marker="*",
                    s=220,
                    c="tab:red",
                    edgecolors="k",
                    zorder=5,
                    label="mothernet",
                )
            if self.config.budget_ms is not None:
                ax.axvline(
                    self.config.budget_ms,
                    ls="--",
                    c="tab:orange",
                    label=f"budget {self.config.budget_ms:g} ms",
                )
            ax.set_xlabel("estimated latency (ms)")
            ax.set_ylabel("surrogate: summed BKD normalised MSE")
            ax.set_title(
                f"{self.space.name}: {self.method}, pop {self.config.pop_size} x "
                f"{self.config.generations} gen, seed {self.config.seed}",
                fontsize=9,
            )
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
            fig.tight_layout()
            fig.savefig(path)
        finally:
            plt.close(fig)
        return Path(path)


# ---- the search ---------------------------------------------------------------------------------


def _losses(space: SearchSpace, library: BkdLibrary) -> tuple[np.ndarray, ...]:
    try:
        return loss_arrays(library.losses(space))
    except LibraryError as exc:
        raise SearchError(f"cannot search space {space.name!r}: {exc}") from None


def _provenance(library: BkdLibrary, estimator: Any) -> dict[str, Any]:
    table = getattr(estimator, "table", estimator)
    prov = getattr(table, "provenance", {}) or {}
    return {
        "mothernet_sha256": library.mothernet_sha256,
        "library": str(library.path) if library.path else None,
        "estimator_mode": getattr(estimator, "mode", "lut"),
        "lut": str(getattr(table, "path", None) or "") or None,
        "device_id": (prov.get("device") or {}).get("id"),
    }


def _all_genomes(n_options: Sequence[int]) -> np.ndarray:
    total = math.prod(n_options)
    if total > MAX_ENUMERATE:
        raise SearchError(
            f"the space has {total:,} architectures; enumerating more than {MAX_ENUMERATE:,} "
            "is refused: filter it first or run the NSGA-II search"
        )
    return np.indices(tuple(n_options)).reshape(len(n_options), -1).T.astype(np.int64)


def _nsga2(
    n_options: Sequence[int],
    evaluate: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    config: SearchConfig,
    progress: ProgressFn | None,
) -> np.ndarray:
    """Run pymoo's NSGA-II; returns every genome it evaluated (rows, with repeats)."""
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.core.callback import Callback
    from pymoo.core.problem import Problem
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.repair.rounding import RoundingRepair
    from pymoo.operators.sampling.rnd import IntegerRandomSampling
    from pymoo.optimize import minimize

    n_opts = np.asarray(n_options)
    active = np.flatnonzero(n_opts > 1)  # slots with a single option are fixed at 0
    seen: list[np.ndarray] = []
    budget = config.budget_ms

    def expand(x: np.ndarray) -> np.ndarray:
        full = np.zeros((len(x), len(n_opts)), dtype=np.int64)
        full[:, active] = np.rint(x).astype(np.int64)
        return full

    class _Problem(Problem):
        def __init__(self) -> None:
            super().__init__(
                n_var=len(active),
                n_obj=2,
                n_ieq_constr=0 if budget is None else 1,
                xl=np.zeros(len(active)),
                xu=(n_opts[active] - 1).astype(float),
                vtype=int,
            )

        def _evaluate(self, x: np.ndarray, out: dict[str, Any], *args: Any, **kw: Any) -> None:
            genomes = expand(x)
            seen.append(genomes)
            loss, lat_ms = evaluate(genomes)
            out["F"] = np.column_stack([loss, lat_ms])
            if budget is not None:
                out["G"] = (lat_ms - budget)[:, None]

    class _Progress(Callback):
        def notify(self, algorithm: Any) -> None:
            if progress is not None:
                progress(int(algorithm.n_gen), config.generations)

    algorithm = NSGA2(
        pop_size=config.pop_size,
        sampling=IntegerRandomSampling(),
        crossover=SBX(prob=CROSSOVER_PROB, eta=CROSSOVER_ETA, vtype=float, repair=RoundingRepair()),
        mutation=PM(eta=MUTATION_ETA, vtype=float, repair=RoundingRepair()),
        eliminate_duplicates=True,
    )
    minimize(
        _Problem(),
        algorithm,
        ("n_gen", config.generations),
        seed=config.seed,
        verbose=False,
        callback=_Progress(),
    )
    return np.concatenate(seen)


def run_search(
    space: SearchSpace,
    library: BkdLibrary,
    estimator: Any,
    config: SearchConfig | None = None,
    mothernet_point: tuple[float, float] | None = None,
    *,
    progress: ProgressFn | None = None,
) -> SearchResult:
    """Search ``space`` for the (surrogate, latency) Pareto front.

    ``estimator``: a :class:`~latency.estimator.LatencyEstimator` (any mode) or a
    :class:`~lut.table.LatencyTable`; ``mothernet_point``: (surrogate, latency_ms) to mark on
    the plot; ``progress(generation, generations)`` is called after every generation."""
    config = config or SearchConfig()
    t0 = time.perf_counter()
    losses = _losses(space, library)
    lat_model = latency_model(space, estimator)
    fastest_us, fastest_genome = lat_model.fastest()
    fastest_ms = fastest_us / 1000.0
    if config.budget_ms is not None and config.budget_ms < fastest_ms:
        raise SearchError(
            f"latency budget {config.budget_ms:g} ms is below the fastest architecture of space "
            f"{space.name!r}: {fastest_ms:.4f} ms (genome {fastest_genome}); raise the budget "
            f"to at least {fastest_ms:.4f} ms"
        )

    def evaluate(genomes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return surrogate(losses, genomes), lat_model.evaluate(genomes) / 1000.0

    n_options = space.n_options()
    if math.prod(n_options) <= config.pop_size:
        genomes, method = _all_genomes(n_options), "enumeration"
        if progress is not None:
            progress(config.generations, config.generations)
    else:
        genomes, method = _nsga2(n_options, evaluate, config, progress), "nsga2"
    genomes = np.unique(genomes, axis=0)
    loss, lat_ms = evaluate(genomes)
    feasible = np.ones(len(genomes), bool)
    if config.budget_ms is not None:
        feasible = lat_ms <= config.budget_ms
    idx = np.flatnonzero(feasible)[nondominated(loss[feasible], lat_ms[feasible])]
    front = make_entries(space, genomes[idx], loss[idx], lat_ms[idx])
    return SearchResult(
        space=space,
        config=config,
        front=front,
        evaluated=np.column_stack([loss, lat_ms]),
        fastest_ms=fastest_ms,
        method=method,
        seconds=time.perf_counter() - t0,
        mothernet=(
            None
            if mothernet_point is None
            else (float(mothernet_point[0]), float(mothernet_point[1]))
        ),
        provenance=_provenance(library, estimator),
    )


def exact_front(
    space: SearchSpace,
    losses: Sequence[Sequence[float]],
    latencies: LatencyModel,
    budget_ms: float | None = None,
) -> tuple[ParetoEntry, ...]:
    """The exact Pareto front by enumerating every genome (refused above
    :data:`MAX_ENUMERATE` architectures)."""
    genomes = _all_genomes(space.n_options())
    loss = surrogate(loss_arrays(losses), genomes)
    lat_ms = latencies.evaluate(genomes) / 1000.0
    feasible = np.ones(len(genomes), bool) if budget_ms is None else lat_ms <= budget_ms
    idx = np.flatnonzero(feasible)[nondominated(loss[feasible], lat_ms[feasible])]
    return make_entries(space, genomes[idx], loss[idx], lat_ms[idx])


def _as_points(front: Any) -> np.ndarray:
    if isinstance(front, SearchResult):
        return front.points()
    items = list(front)
    if items and isinstance(items[0], ParetoEntry):
        return np.array([[e.surrogate, e.latency_ms] for e in items])
    return np.asarray(items, dtype=float).reshape(-1, 2)


def default_ref_point(exact: Any) -> np.ndarray:
    """The exact front's nadir pushed out by 10% of its range on each axis."""
    pts = _as_points(exact)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    span = np.where(hi > lo, hi - lo, np.maximum(np.abs(hi), 1.0))
    return hi + 0.1 * span


def hypervolume_ratio(found: Any, exact: Any, ref_point: Sequence[float] | None = None) -> float:
    """Hypervolume of ``found`` over that of ``exact`` (both minimised, (surrogate, latency)
    points, lists of :class:`ParetoEntry` or a :class:`SearchResult`), with pymoo's HV
    indicator at ``ref_point`` (default :func:`default_ref_point` of ``exact``)."""
    from pymoo.indicators.hv import HV

    ref = default_ref_point(exact) if ref_point is None else np.asarray(ref_point, dtype=float)
    hv = HV(ref_point=ref)
    ex, fo = _as_points(exact), _as_points(found)
    total = float(hv(ex)) if len(ex) else 0.0
    if total <= 0:
        raise SearchError("the exact front has zero hypervolume at this reference point")
    return (float(hv(fo)) if len(fo) else 0.0) / total


# ---- files --------------------------------------------------------------------------------------


def load_pareto(path: str | Path) -> SearchResult:
    path = Path(path)
    data = read_versioned_json(
        path,
        schema=SCHEMA,
        version=SCHEMA_VERSION,
        what="Pareto front",
        made_by="`donna search`",
        error=SearchError,
    )
    try:
        ev = data.get("evaluated") or {"surrogate": [], "latency_ms": []}
        mn = data.get("mothernet")
        return SearchResult(
            space=SearchSpace.from_dict(data["space"]),
            config=SearchConfig(**data["config"]),
            front=tuple(ParetoEntry.from_dict(e) for e in data["front"]),
            evaluated=np.column_stack([ev["surrogate"], ev["latency_ms"]]).reshape(-1, 2),
            fastest_ms=float(data["fastest_ms"]),
            method=str(data["method"]),
            seconds=float(data.get("seconds", 0.0)),
            mothernet=None if mn is None else (float(mn["surrogate"]), float(mn["latency_ms"])),
            provenance=dict(data.get("provenance") or {}),
        )
    except (KeyError, TypeError, ValueError, SpaceError) as exc:
        raise SearchError(
            f"Pareto file {path} is corrupt ({exc}); run `donna search` again"
        ) from None


def pick(ref: str | Path) -> tuple[SearchSpace, list[int], ParetoEntry]:
    """The architecture ``PATH:INDEX`` of a Pareto file (e.g. ``runs/x/pareto.json:3``):
    its space, genome and front entry."""
    text = str(ref)
    path, sep, index = text.rpartition(":")
    if not sep or not index.strip().lstrip("-").isdigit():
        n = len(load_pareto(text).front) if Path(text).is_file() else None
        hint = f" (0..{n - 1})" if n else ""
        raise SearchError(
            f"name an architecture of a Pareto front as PATH:INDEX, e.g. {text}:0{hint}"
        )
    result = load_pareto(path)
    entry = result.at(int(index), path)
    return result.space, list(entry.genome), entry
