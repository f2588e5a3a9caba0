"""The search: :func:`run_search` (NSGA-II, or enumeration of a space no larger than the
population), :func:`exact_front` (enumeration of a whole space) and the hypervolume
comparison of two fronts (:func:`hypervolume_ratio`).

pymoo is imported inside the functions that need it (:mod:`nas.search.problem`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nas.bkd.library import BkdLibrary, LibraryError
from nas.core.errors import SearchError
from nas.core.pricing import BlockPricer
from nas.core.spaces import SearchSpace
from nas.search.config import ProgressFn, SearchConfig
from nas.search.objectives import LatencyModel, latency_model, loss_arrays, nondominated
from nas.search.result import ParetoEntry, SearchResult, make_entries

if TYPE_CHECKING:
    from nas.search.problem import SearchProblem

MAX_ENUMERATE = 2_000_000  # exact_front refuses larger spaces


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
        "lut": str(Path(table.path).resolve()) if getattr(table, "path", None) else None,
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


def _front(
    space: SearchSpace, problem: SearchProblem, genomes: np.ndarray
) -> tuple[tuple[ParetoEntry, ...], np.ndarray]:
    """The feasible non-dominated entries among ``genomes`` (sorted by latency) and every
    genome's (loss, latency_ms)."""
    loss, lat_ms = problem.evaluate_genomes(genomes)
    feasible = np.ones(len(genomes), bool)
    if problem.budget_ms is not None:
        feasible = lat_ms <= problem.budget_ms
    idx = np.flatnonzero(feasible)[nondominated(loss[feasible], lat_ms[feasible])]
    front = make_entries(space, genomes[idx], loss[idx], lat_ms[idx])
    return front, np.column_stack([loss, lat_ms])


def _check_budget(space: SearchSpace, model: LatencyModel, budget_ms: float | None) -> float:
    """The fastest latency of the space (ms); a budget below it is an error giving it."""
    fastest_us, fastest_genome = model.fastest()
    fastest_ms = fastest_us / 1000.0
    if budget_ms is not None and budget_ms < fastest_ms:
        raise SearchError(
            f"latency budget {budget_ms:g} ms is below the fastest architecture of space "
            f"{space.name!r}: {fastest_ms:.4f} ms (genome {fastest_genome}); raise the budget "
            f"to at least {fastest_ms:.4f} ms"
        )
    return fastest_ms


def run_search(
    space: SearchSpace,
    library: BkdLibrary,
    estimator: BlockPricer,
    config: SearchConfig | None = None,
    mothernet_point: tuple[float, float] | None = None,
    *,
    progress: ProgressFn | None = None,
) -> SearchResult:
    """Search ``space`` for the (surrogate, latency) Pareto front.

    ``estimator``: a :class:`~nas.core.pricing.BlockPricer` in µs (a
    :class:`~latency.estimator.LatencyEstimator` in any mode, a :class:`~lut.table.LatencyTable`);
    ``mothernet_point``: (surrogate, latency_ms) to mark on the plot;
    ``progress(generation, generations)`` is called after every generation."""
    from nas.search.problem import SearchProblem, run_nsga2

    config = config or SearchConfig()
    t0 = time.perf_counter()
    losses = _losses(space, library)
    model = latency_model(space, estimator)
    fastest_ms = _check_budget(space, model, config.budget_ms)
    n_options = space.n_options()
    problem = SearchProblem(losses, model, n_options, config.budget_ms)
    if math.prod(n_options) <= config.pop_size:
        genomes, method = _all_genomes(n_options), "enumeration"
        if progress is not None:
            progress(config.generations, config.generations)
    else:
        genomes, method = run_nsga2(problem, config, progress), "nsga2"
    front, evaluated = _front(space, problem, np.unique(genomes, axis=0))
    return SearchResult(
        space=space,
        config=config,
        front=front,
        evaluated=evaluated,
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
    :data:`MAX_ENUMERATE` architectures), evaluated by the search's own
    :class:`~nas.search.problem.SearchProblem`."""
    from nas.search.problem import SearchProblem

    n_options = space.n_options()
    genomes = _all_genomes(n_options)
    problem = SearchProblem(loss_arrays(losses), latencies, n_options, budget_ms)
    return _front(space, problem, genomes)[0]


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
