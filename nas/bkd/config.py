"""BKD settings (:class:`BkdConfig`): the defaults are defined here only. No torch."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import Any

from nas.core.errors import BkdError

# The design every BKD library records (provenance ``bkd.design``): a library made otherwise
# (the feature store of earlier versions) is not resumed.
DESIGN = "shared-teacher"
# Worker processes a BKD run uses unless told otherwise (CLIs and the pipeline share it).
DEFAULT_WORKERS = 2
# Settings that change speed, memory or checkpoint frequency, never a result.
SPEED_SETTINGS = (
    "workers",
    "threads",
    "max_group",
    "memory_budget",
    "checkpoint_every",
    "checkpoint_minutes",
)


@dataclass(frozen=True)
class BkdConfig:
    """BKD settings; the defaults are defined here only.

    ``train_samples`` / ``val_samples`` cap the training and validation images (``None``:
    all); ``workers`` (processes, a group of options each, on the CPU) and ``threads`` (torch
    threads per worker; ``None``: the cores divided among the workers) change speed, not
    results.

    BKD is shared-teacher (:mod:`nas.bkd.shared`): a group of options trains on one stream of
    training batches, one teacher forward per batch for the whole group. ``max_group`` caps
    the options of a group (``None``: no cap) and ``memory_budget`` the bytes a group's
    training may take (``None``: from the free GPU memory, or the available RAM with a cap;
    :mod:`nas.bkd.memory`). A group in training is
    checkpointed every ``checkpoint_every`` steps or ``checkpoint_minutes`` minutes, whichever
    comes first. ``norm_samples`` training images give the variance of the teacher's slot
    outputs that the recorded training losses are divided by; ``bn_calib_samples`` training
    images re-estimate the students' BatchNorm statistics.
    """

    epochs: float = 1.0
    batch_size: int = 64
    lr: float = 5e-3
    weight_decay: float = 0.0
    seed: int = 0
    train_samples: int | None = 10_000
    val_samples: int | None = 1_000
    bn_calib_samples: int = 512
    norm_samples: int = 512
    workers: int = DEFAULT_WORKERS
    threads: int | None = None
    max_group: int | None = None
    memory_budget: int | None = None
    checkpoint_every: int = 500
    checkpoint_minutes: float = 10.0

    def __post_init__(self) -> None:
        if not (self.epochs > 0 and math.isfinite(self.epochs)):
            raise BkdError(f"BKD epochs must be > 0, got {self.epochs}")
        if self.batch_size < 2:
            raise BkdError(f"BKD batch size must be >= 2 (BatchNorm), got {self.batch_size}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise BkdError(f"BKD learning rate must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise BkdError(f"weight decay must be >= 0, got {self.weight_decay}")
        for name in ("train_samples", "val_samples"):
            v = getattr(self, name)
            if v is not None and v < 2:
                raise BkdError(f"{name} must be >= 2 or None (all), got {v}")
        if self.bn_calib_samples < 0:
            raise BkdError(f"bn_calib_samples must be >= 0, got {self.bn_calib_samples}")
        if self.norm_samples < 2:
            raise BkdError(f"norm_samples must be >= 2, got {self.norm_samples}")
        if self.workers < 1:
            raise BkdError(f"workers must be >= 1, got {self.workers}")
        if self.threads is not None and self.threads < 1:
            raise BkdError(f"threads per worker must be >= 1, got {self.threads}")
        self._check_group_settings()

    def _check_group_settings(self) -> None:
        if self.max_group is not None and self.max_group < 1:
            raise BkdError(f"max_group must be >= 1 or None (no cap), got {self.max_group}")
        if self.memory_budget is not None and self.memory_budget < 1:
            raise BkdError(
                f"memory_budget must be a number of bytes >= 1 or None (auto), got "
                f"{self.memory_budget}"
            )
        if self.checkpoint_every < 1 or not self.checkpoint_minutes > 0:
            raise BkdError(
                "checkpoint_every must be >= 1 step and checkpoint_minutes > 0, got "
                f"{self.checkpoint_every} and {self.checkpoint_minutes}"
            )

    def result_settings(self) -> dict[str, Any]:
        """The settings that change results, and the design (recorded as provenance, checked
        on resume)."""
        d = asdict(self)
        for k in SPEED_SETTINGS:
            d.pop(k)
        return {**d, "design": DESIGN}

    def threads_per_worker(self) -> int:
        if self.threads is not None:
            return self.threads
        return max(1, (os.cpu_count() or 1) // self.workers)
