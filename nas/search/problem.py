"""The one pymoo problem of the search and the NSGA-II recipe that solves it.

:class:`SearchProblem` evaluates both objectives (summed BKD loss, latency in ms) for a whole
population at once from the tables of :mod:`nas.search.objectives`; :meth:`~SearchProblem.
evaluate_genomes` is the same evaluation on full genomes, used by the search's front
extraction, the exact-front enumeration and ``bench/search_speed.py``. Slots with a single
option are not decision variables (held at 0). Every genome pymoo asks for is recorded
(:meth:`~SearchProblem.evaluated`): the search's archive.

This module imports pymoo; import it inside the functions that need it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.callback import Callback
from pymoo.core.problem import Problem
from pymoo.operators.crossover.sbx import SBX
from pymoo.operators.mutation.pm import PM
from pymoo.operators.repair.rounding import RoundingRepair
from pymoo.operators.sampling.rnd import IntegerRandomSampling
from pymoo.optimize import minimize

from nas.search.config import ProgressFn, SearchConfig
from nas.search.objectives import LatencyModel, surrogate

# pymoo's recipe for integer genomes (SBX + PM on floats, then rounded).
CROSSOVER_PROB = 1.0
CROSSOVER_ETA = 3.0
MUTATION_ETA = 3.0


class SearchProblem(Problem):
    """Minimise (summed loss, latency ms) over genomes of ``n_options`` options per slot,
    with the constraint ``latency_ms <= budget_ms`` when a budget is given.

    ``losses[slot][option]``: float arrays (:func:`~nas.search.objectives.loss_arrays`);
    ``latency``: the space's :class:`~nas.search.objectives.LatencyModel`."""

    def __init__(
        self,
        losses: Sequence[np.ndarray],
        latency: LatencyModel,
        n_options: Sequence[int],
        budget_ms: float | None = None,
    ) -> None:
        self.losses = tuple(losses)
        self.latency = latency
        self.n_options = np.asarray(n_options)
        self.budget_ms = budget_ms
        self.active = np.flatnonzero(self.n_options > 1)  # slots with a single option: fixed at 0
        self._seen: list[np.ndarray] = []
        super().__init__(
            n_var=len(self.active),
            n_obj=2,
            n_ieq_constr=0 if budget_ms is None else 1,
            xl=np.zeros(len(self.active)),
            xu=(self.n_options[self.active] - 1).astype(float),
            vtype=int,
        )

    def evaluate_genomes(self, genomes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(summed loss, latency ms) of each row of ``genomes`` (full genomes, every slot)."""
        return surrogate(self.losses, genomes), self.latency.evaluate(genomes) / 1000.0

    def genomes(self, x: np.ndarray) -> np.ndarray:
        """Full genomes from pymoo's decision variables (rounded; fixed slots at 0)."""
        full = np.zeros((len(x), len(self.n_options)), dtype=np.int64)
        full[:, self.active] = np.rint(x).astype(np.int64)
        return full

    def evaluated(self) -> np.ndarray:
        """Every genome evaluated so far, in order, with repeats."""
        return np.concatenate(self._seen)

    def _evaluate(self, x: np.ndarray, out: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        genomes = self.genomes(x)
        self._seen.append(genomes)
        loss, lat_ms = self.evaluate_genomes(genomes)
        out["F"] = np.column_stack([loss, lat_ms])
        if self.budget_ms is not None:
            out["G"] = (lat_ms - self.budget_ms)[:, None]


def nsga2_algorithm(pop_size: int) -> NSGA2:
    """NSGA-II for integer genomes: integer random sampling, SBX and polynomial mutation with
    rounding repair, duplicate elimination."""
    return NSGA2(
        pop_size=pop_size,
        sampling=IntegerRandomSampling(),
        crossover=SBX(prob=CROSSOVER_PROB, eta=CROSSOVER_ETA, vtype=float, repair=RoundingRepair()),
        mutation=PM(eta=MUTATION_ETA, vtype=float, repair=RoundingRepair()),
        eliminate_duplicates=True,
    )


class _Progress(Callback):
    def __init__(self, progress: ProgressFn | None, generations: int) -> None:
        super().__init__()
        self.progress = progress
        self.generations = generations

    def notify(self, algorithm: Any) -> None:
        if self.progress is not None:
            self.progress(int(algorithm.n_gen), self.generations)


def run_nsga2(
    problem: SearchProblem, config: SearchConfig, progress: ProgressFn | None = None
) -> np.ndarray:
    """Solve ``problem`` with :func:`nsga2_algorithm` for ``config.generations`` generations
    from ``config.seed``; returns every genome evaluated (rows, with repeats).
    ``progress(generation, generations)`` is called after every generation."""
    minimize(
        problem,
        nsga2_algorithm(config.pop_size),
        ("n_gen", config.generations),
        seed=config.seed,
        verbose=False,
        callback=_Progress(progress, config.generations),
    )
    return problem.evaluated()
