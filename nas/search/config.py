"""The search settings (:class:`SearchConfig`) and their defaults, defined once."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from nas.core.errors import SearchError

DEFAULT_POP_SIZE = 100
DEFAULT_GENERATIONS = 50
DEFAULT_SEED = 0

ProgressFn = Callable[[int, int], None]  # progress(generation, generations)


@dataclass(frozen=True)
class SearchConfig:
    """NSGA-II population, generations and seed; ``budget_ms``: an optional latency
    constraint ``latency <= budget_ms``."""

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
