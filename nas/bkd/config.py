"""BKD settings (:class:`BkdConfig`): the defaults are defined here only. No torch."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import Any

from nas.core.errors import BkdError

FEATURE_DTYPES = ("float16", "float32")
# Worker processes a BKD run uses unless told otherwise (CLIs and the pipeline share it).
DEFAULT_WORKERS = 2


@dataclass(frozen=True)
class BkdConfig:
    """BKD settings; the defaults are defined here only.

    ``train_samples`` / ``val_samples`` cap the images whose teacher features are computed
    (``None``: all); ``workers`` and ``threads`` (torch threads per worker; ``None``: the
    cores divided among the workers) change speed, not results.
    """

    epochs: float = 1.0
    batch_size: int = 64
    lr: float = 5e-3
    weight_decay: float = 0.0
    seed: int = 0
    train_samples: int | None = 10_000
    val_samples: int | None = 1_000
    feature_dtype: str = "float16"
    bn_calib_samples: int = 512
    chunk_size: int = 256
    workers: int = DEFAULT_WORKERS
    threads: int | None = None

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
        if self.feature_dtype not in FEATURE_DTYPES:
            raise BkdError(
                f"feature dtype must be one of {FEATURE_DTYPES}, got {self.feature_dtype!r}"
            )
        if self.bn_calib_samples < 0 or self.chunk_size < 1:
            raise BkdError("bn_calib_samples must be >= 0 and chunk_size >= 1")
        if self.workers < 1:
            raise BkdError(f"workers must be >= 1, got {self.workers}")
        if self.threads is not None and self.threads < 1:
            raise BkdError(f"threads per worker must be >= 1, got {self.threads}")

    def result_settings(self) -> dict[str, Any]:
        """The settings that change results (recorded as provenance, checked on resume)."""
        d = asdict(self)
        for k in ("workers", "threads", "chunk_size"):
            d.pop(k)
        return d

    def threads_per_worker(self) -> int:
        if self.threads is not None:
            return self.threads
        return max(1, (os.cpu_count() or 1) // self.workers)
