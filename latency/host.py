"""The host device: times ``.tflite`` models on this machine's CPU with TensorFlow's TFLite
interpreter (``tf.lite.Interpreter``; ai-edge-litert 2.x is 9-16x slower on large depthwise
convs here, so it is not used for timing).

Measurement protocol (the reasons are in ``README.md``, "How latency is measured"):

* a *window* of models is loaded and warmed up; the reference block is always in it;
* each round times every model in two cache contexts:
  *cold*: ``invokes`` single invokes interleaved in a seeded random order, so each one runs
  after other models' invokes (its weights and the interpreter's own data evicted), and
  *warm*: ``invokes`` back-to-back invokes of the same model (what a whole network gets when
  invoked repeatedly, e.g. on a camera stream);
  a block inside a network sits between the two (see :mod:`latency.context`);
* the reference's warm median tracks machine drift: every sample of a round is scaled by
  ``reference baseline / reference now``, where *reference now* is the median of the
  reference over the :data:`DRIFT_WINDOW` rounds around it (:func:`drift_factors`) and the
  baseline (unless given) the median of the first rounds. The reference is timed before
  every warm burst of the round (:data:`REFERENCE_PROBES` invokes), not in one burst of its
  own only, so it samples the whole round. One round's single burst is not used: on the host
  it moved ±5-10% round to round (once to 0.62x) while whole networks in the
  same rounds repeat to 2%, so per-round factors added noise and set each call's scale by its
  first round (``bench/RESULTS.md``). Raw figures are kept as well;
* after ``repeats`` rounds a model whose round medians spread (IQR / median) more than
  ``max_spread``
  gets extra rounds (up to ``max_extra_rounds``); then it is finished and reported at once,
  and the next pending model takes its place in the window.
"""

from __future__ import annotations

import hashlib
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from latency.errors import MeasurementError, SettingError
from latency.stats import LatencyStats, relative_spread, summarize
from nas.core.specs import MBConvSpec

# A mid-sized block measured in every round to track drift. Fixed, so that every LUT of a
# device is on one scale whatever the space.
REFERENCE_SPEC = MBConvSpec(32, 32, 5, 1, 4, 0.25, "silu", 28, 28)
WARM_SKIP = 2  # first back-to-back invokes of a warm burst are still cold: not counted
DRIFT_WINDOW = 5  # rounds whose reference medians make one round's drift estimate
# reference invokes timed before every warm burst of a round, so that the reference samples
# the machine over the whole round (a burst of its own lasts a few ms, a network's 100 ms)
REFERENCE_PROBES = 4


def drift_factors(
    reference_us: Sequence[float], rounds: Sequence[int], baseline_us: float,
    window: int = DRIFT_WINDOW,
) -> list[float]:  # fmt: skip
    """Drift factors ``baseline / reference now`` for the rounds ``rounds``, *reference now*
    being the median of ``reference_us`` (the reference's warm median of every round so far)
    over the ``window`` rounds centred on that round (those that exist yet)."""
    half = window // 2
    ref = np.asarray(reference_us, dtype=float)
    return [baseline_us / float(np.median(ref[max(0, r - half) : r + half + 1])) for r in rounds]


@dataclass(frozen=True)
class MeasureConfig:
    threads: int = 1
    warmup: int = 10
    repeats: int = 5
    invokes: int = 20
    window: int = 8
    max_spread: float = 0.10
    max_extra_rounds: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        if self.threads < 1 or self.repeats < 1 or self.invokes < 1 or self.window < 1:
            raise SettingError(
                "threads, repeats, invokes and window must all be >= 1 "
                f"(got {self.threads}, {self.repeats}, {self.invokes}, {self.window})"
            )


@dataclass(frozen=True)
class Measurement:
    """What timing one model gave, drift-corrected, in both cache contexts."""

    warm: LatencyStats
    cold: LatencyStats
    raw_warm_median_us: float
    raw_cold_median_us: float
    rounds: int
    spread: float
    stable: bool
    seconds: float
    baseline_us: float

    def to_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {}
        for name, st in (("warm", self.warm), ("cold", self.cold)):
            entry.update({f"{name}_{k}": v for k, v in st.to_dict().items()})
        entry.update(
            raw_warm_median_us=self.raw_warm_median_us,
            raw_cold_median_us=self.raw_cold_median_us,
            rounds=self.rounds,
            spread=self.spread,
            stable=self.stable,
            measured_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
        return entry


@dataclass
class _Slot:
    key: Any
    path: Path
    interp: Any
    run: Callable[[], None]
    warm: list[np.ndarray] = field(default_factory=list)
    cold: list[np.ndarray] = field(default_factory=list)
    rounds: list[int] = field(default_factory=list)  # the rounds (of the call) it was timed in
    started: float = field(default_factory=time.perf_counter)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def tensorflow_version() -> str:
    from importlib.metadata import version

    return version("tensorflow")


class HostDevice:
    """This machine's CPU, timed with ``tf.lite.Interpreter``."""

    name = "host"

    def __init__(self, config: MeasureConfig | None = None) -> None:
        self.config = config or MeasureConfig()

    # ---- provenance -------------------------------------------------------------------------
    def fingerprint(self) -> dict[str, Any]:
        ident = {
            "kind": "host",
            "cpu": cpu_model(),
            "logical_cores": os.cpu_count(),
            "machine": platform.machine(),
            "system": platform.system(),
        }
        dev_id = "host-" + hashlib.sha256(repr(sorted(ident.items())).encode()).hexdigest()[:12]
        return {
            "id": dev_id,
            **ident,
            "os": platform.platform(),
            "hostname": platform.node(),
            "python": platform.python_version(),
        }

    def runtime(self) -> str:
        return f"tf.lite.Interpreter (tensorflow {tensorflow_version()}, XNNPACK default)"

    def measure_settings(self) -> dict[str, Any]:
        return asdict(self.config)

    def close(self) -> None:
        """Nothing to release: interpreters are freed with each :meth:`measure` call."""

    # ---- timing -----------------------------------------------------------------------------
    def _load(self, key: Any, path: Path) -> _Slot:
        from latency.convert import import_tensorflow, quiet_native_stderr

        tf = import_tensorflow()
        try:
            with quiet_native_stderr():  # "INFO: Created TensorFlow Lite XNNPACK delegate"
                interp = tf.lite.Interpreter(model_path=str(path), num_threads=self.config.threads)
                interp.allocate_tensors()
            inp = interp.get_input_details()[0]
            x = np.random.default_rng(0).standard_normal(inp["shape"]).astype(inp["dtype"])
            interp.set_tensor(inp["index"], x)
            run = interp.invoke
            for _ in range(self.config.warmup):
                run()
        except Exception as exc:  # TFLite raises RuntimeError/ValueError with C++ text
            raise MeasurementError(f"cannot run {path} with the TFLite interpreter: {exc}") from exc
        return _Slot(key=key, path=path, interp=interp, run=run)

    def measure(
        self,
        models: Sequence[tuple[Any, Path]],
        reference: Path,
        baseline_us: float | None = None,
        on_done: Callable[[Any, Measurement], None] | None = None,
    ) -> dict[Any, Measurement]:
        """Time every ``(key, path)`` model, interleaved with the reference model.

        ``baseline_us`` is the reference's warm latency all results are scaled to (from an
        existing LUT when resuming); when None, the first round sets it (it is in every
        :class:`Measurement`). ``on_done`` is called as each model finishes, so the caller can
        save it at once.
        """
        cfg = self.config
        rng = np.random.default_rng(cfg.seed)
        pending = list(models)
        pending.reverse()
        ref = self._load("__reference__", Path(reference))
        active: list[_Slot] = []
        reference_us: list[float] = []  # the reference's warm median, round by round
        results: dict[Any, Measurement] = {}
        perf = time.perf_counter_ns
        n_warm = cfg.invokes + WARM_SKIP
        while pending or active:
            while pending and len(active) < cfg.window:
                key, path = pending.pop()
                active.append(self._load(key, Path(path)))
            members = [ref, *active]
            cold = np.empty((len(members), cfg.invokes))
            warm = np.empty((len(members), n_warm))
            for i in range(cfg.invokes):
                for j in rng.permutation(len(members)):
                    run = members[j].run
                    t0 = perf()
                    run()
                    cold[j, i] = perf() - t0
            probes: list[float] = []  # the reference, timed again before each warm burst
            for j in rng.permutation(len(members)):
                for i in range(WARM_SKIP + REFERENCE_PROBES):
                    t0 = perf()
                    ref.run()
                    if i >= WARM_SKIP:
                        probes.append(perf() - t0)
                run = members[j].run
                for i in range(n_warm):
                    t0 = perf()
                    run()
                    warm[j, i] = perf() - t0
            cold /= 1000.0  # ns -> us
            warm = warm[:, WARM_SKIP:] / 1000.0
            reference_us.append(float(np.median([*warm[0], *(np.array(probes) / 1000.0)])))
            finished = []
            for j, slot in enumerate(active, start=1):
                slot.cold.append(cold[j])
                slot.warm.append(warm[j])
                slot.rounds.append(len(reference_us) - 1)
                n = len(slot.rounds)
                if n < cfg.repeats:
                    continue
                if baseline_us is None:  # the median of the first rounds, not one round
                    baseline_us = float(np.median(reference_us[:DRIFT_WINDOW]))
                factors = drift_factors(reference_us, slot.rounds, baseline_us)
                spread = max(
                    relative_spread([float(np.median(r)) * f for r, f in zip(rs, factors)])
                    for rs in (slot.warm, slot.cold)
                )
                stable = spread <= cfg.max_spread
                if stable or n >= cfg.repeats + cfg.max_extra_rounds:
                    m = _finish(slot, factors, spread, stable, baseline_us)
                    results[slot.key] = m
                    finished.append(slot)
                    if on_done:
                        on_done(slot.key, m)
            for slot in finished:
                active.remove(slot)
        return results


def _finish(
    slot: _Slot, factors: list[float], spread: float, stable: bool, baseline_us: float
) -> Measurement:
    def corrected(rounds: list[np.ndarray]) -> LatencyStats:
        return summarize(np.concatenate([r * f for r, f in zip(rounds, factors)]))

    return Measurement(
        warm=corrected(slot.warm),
        cold=corrected(slot.cold),
        raw_warm_median_us=float(np.median(np.concatenate(slot.warm))),
        raw_cold_median_us=float(np.median(np.concatenate(slot.cold))),
        rounds=len(slot.rounds),
        spread=spread,
        stable=stable,
        seconds=time.perf_counter() - slot.started,
        baseline_us=baseline_us,
    )
