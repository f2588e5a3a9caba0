"""Latency of architectures from a LUT, with a fallback for blocks the LUT lacks.

Modes:

* ``lut``: a missing block is an error that names it;
* ``measure``: a missing block is converted, measured on the device and added to the LUT
  (the device must be the one the LUT was measured on), holding the LUT's one-writer lock
  while it measures (:mod:`nas.core.locks`);
* ``predict``: a missing block is predicted by a regressor trained on the LUT's entries from
  block features; its cross-validated error is in :attr:`LatencyEstimator.predictor_report`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from latency.convert import ConvertConfig
from latency.devices import Device
from lut.table import LatencyTable, identity
from nas.core.errors import DonnaError
from nas.core.specs import (
    Architecture,
    BlockSpec,
    ClassifierHeadSpec,
    ConvBnActSpec,
    ImageHeadSpec,
    MBConvSpec,
    macs,
    mid_chs,
    out_shape,
    params,
)

Mode = Literal["lut", "measure", "predict"]
MODES: tuple[str, ...] = ("lut", "measure", "predict")


class EstimatorError(DonnaError):
    """The estimator cannot work as configured."""


def block_features(spec: BlockSpec) -> list[float]:
    """Numeric features of a block for the latency predictor."""
    out = out_shape(spec)
    out_elems = math.prod(out)
    in_elems = spec.in_chs * spec.in_h * spec.in_w
    mid = 0.0
    kernel = stride = 1
    se = exp = 0.0
    if isinstance(spec, MBConvSpec):
        mid = float(mid_chs(spec) * spec.in_h * spec.in_w)
        kernel, stride, se, exp = spec.kernel, spec.stride, float(spec.se_ratio > 0), spec.exp_ratio
    elif isinstance(spec, ConvBnActSpec):
        kernel, stride = spec.kernel, spec.stride
    elif isinstance(spec, ImageHeadSpec):
        kernel = spec.kernel
    return [
        math.log1p(macs(spec)),
        math.log1p(params(spec)),
        math.log1p(in_elems),
        math.log1p(out_elems),
        math.log1p(mid),
        float(kernel),
        float(stride),
        se,
        exp,
        float(isinstance(spec, MBConvSpec)),
        float(isinstance(spec, ClassifierHeadSpec)),
        float(isinstance(spec, ImageHeadSpec)),
    ]


@dataclass(frozen=True)
class PredictorReport:
    n_train: int
    cv_folds: int
    cv_mape: float  # mean absolute percentage error, cross-validated
    cv_within_10pct: float

    def summary(self) -> str:
        return (
            f"latency predictor: {self.n_train} LUT entries, {self.cv_folds}-fold CV mean abs "
            f"error {self.cv_mape * 100:.1f}%, {self.cv_within_10pct * 100:.0f}% within ±10%"
        )


class LatencyPredictor:
    """Gradient-boosted trees on log latency from :func:`block_features`."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.model: Any = None
        self.report: PredictorReport | None = None

    def _new(self) -> Any:
        from sklearn.ensemble import GradientBoostingRegressor

        return GradientBoostingRegressor(
            n_estimators=300,
            max_depth=3,
            learning_rate=0.05,
            subsample=0.8,
            random_state=self.seed,
        )

    def fit(self, specs: Sequence[BlockSpec], latencies_us: Sequence[float]) -> PredictorReport:
        if len(specs) < 10:
            raise EstimatorError(
                f"predict mode needs at least 10 LUT entries to train on, the LUT has "
                f"{len(specs)}; profile more blocks first (`latency-profile`)"
            )
        from sklearn.model_selection import KFold, cross_val_predict

        x = np.array([block_features(s) for s in specs])
        y = np.log(np.asarray(latencies_us, dtype=float))
        folds = min(5, len(specs))
        pred = cross_val_predict(
            self._new(), x, y, cv=KFold(folds, shuffle=True, random_state=self.seed)
        )
        rel = np.abs(np.exp(pred - y) - 1.0)
        self.model = self._new().fit(x, y)
        self.report = PredictorReport(
            len(specs), folds, float(rel.mean()), float((rel <= 0.10).mean())
        )
        return self.report

    def predict(self, specs: Sequence[BlockSpec]) -> np.ndarray:
        if self.model is None:
            raise EstimatorError("the latency predictor is not trained; call fit() first")
        x = np.array([block_features(s) for s in specs])
        return np.exp(self.model.predict(x))


class LatencyEstimator:
    """Estimated latency (µs) of architectures on one device."""

    def __init__(
        self,
        table: LatencyTable,
        mode: Mode = "lut",
        *,
        device: Device | None = None,
        convert_config: ConvertConfig | None = None,
        seed: int = 0,
    ) -> None:
        if mode not in MODES:
            raise EstimatorError(f"unknown estimator mode {mode!r}; choose one of {MODES}")
        if mode == "measure" and (device is None or convert_config is None):
            raise EstimatorError(
                "measure mode needs the device the LUT was measured on and a converter "
                "config (cache folder)"
            )
        if device is not None:  # never price a device with another device's LUT
            from latency.profiler import provenance_for

            table.require(identity(provenance_for(device)))
        self.table = table
        self.mode = mode
        self.device = device
        self.convert_config = convert_config
        self._predicted: dict[BlockSpec, float] = {}
        self.predictor: LatencyPredictor | None = None
        if mode == "predict":
            specs = table.specs()
            self.predictor = LatencyPredictor(seed)
            self.predictor.fit(specs, [table.latency(s) for s in specs])

    @property
    def predictor_report(self) -> PredictorReport | None:
        return self.predictor.report if self.predictor else None

    # ---- the pricer protocol (nas.core.pricing.BlockPricer) -------------------------------
    unit = "us"

    def block_costs(self, specs: Sequence[BlockSpec]) -> list[float]:
        """In-network latency (µs) of each block; missing blocks per the mode, all at once."""
        self._fill(specs)
        return [self.table.latency(s) if s in self.table else self._predicted[s] for s in specs]

    def describe(self) -> str:
        return f"latency estimator ({self.mode} mode, LUT {self.table.path or '(in memory)'})"

    def block_latency(self, spec: BlockSpec) -> float:
        return self.block_costs([spec])[0]

    def estimate(self, arch: Architecture | Iterable[BlockSpec]) -> float:
        return float(sum(self.block_costs(list(arch))))

    def estimate_many(self, archs: Sequence[Architecture]) -> np.ndarray:
        self._fill([b for a in archs for b in a.blocks])
        return np.array([self.estimate(a) for a in archs])

    __call__ = estimate

    def _fill(self, specs: Sequence[BlockSpec]) -> None:
        missing = [s for s in self.table.missing(specs) if s not in self._predicted]
        if not missing:
            return
        if self.mode == "lut":
            self.table.lookup(missing)  # raises LutMissError naming every missing block
        elif self.mode == "measure":
            self._measure(missing)
        else:
            assert self.predictor is not None
            for s, v in zip(missing, self.predictor.predict(missing)):
                self._predicted[s] = float(v)

    def _measure(self, missing: Sequence[BlockSpec]) -> None:
        """Measure ``missing`` into the LUT as its one writer: under the LUT's lock (another
        writer refuses this one, naming it), after re-reading the file, so what others wrote
        since it was loaded is kept (and not measured again)."""
        from latency.profiler import profile_specs
        from nas.core.locks import writer_lock

        assert self.device is not None and self.convert_config is not None
        path = self.table.path
        with writer_lock(path, "LUT") if path is not None else contextlib.nullcontext():
            if path is not None and path.exists():
                fresh = LatencyTable.load(path)
                fresh.require(self.table.identity())
                self.table.provenance, self.table.entries = fresh.provenance, fresh.entries
            todo = self.table.missing(missing)
            if todo:
                profile_specs(todo, self.device, self.table, self.convert_config)


def build_estimator(
    table: LatencyTable | str | Path,
    mode: str = "lut",
    device: Device | None = None,
    *,
    seed: int = 0,
    convert_config: ConvertConfig | None = None,
) -> LatencyEstimator:
    """The one way commands and the pipeline make a latency estimator.

    ``table``: a LUT or its path. ``measure`` mode needs ``device`` (the one the LUT was
    measured on, from :func:`latency.devices.open_device`); its converter settings default to
    the converted-model cache with ``seed``."""
    if not isinstance(table, LatencyTable):
        table = LatencyTable.load(table)
    if mode == "measure":
        if device is None:
            raise EstimatorError(
                "--mode measure measures missing blocks on a device: pass --device (the one "
                "the LUT was measured on, e.g. host)"
            )
        if convert_config is None:
            from latency.convert import default_cache_dir

            convert_config = ConvertConfig(default_cache_dir(), seed=seed)
    return LatencyEstimator(
        table, mode, device=device, convert_config=convert_config, seed=seed  # type: ignore[arg-type]
    )
