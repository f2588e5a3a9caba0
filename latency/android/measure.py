"""Timing models on a phone with ``benchmark_model`` (the phone's side of the LUT).

:class:`PhoneBenchmark` is the phone as a latency :class:`latency.devices.Device`
(fingerprint, runtime, settings, :meth:`~PhoneBenchmark.measure`); it drives an
:class:`~latency.android.device.AndroidDevice`, which does all the adb I/O.

Protocol, per model: cool down (``AdbConfig.cooldown_s``), wait for the thermal gate, record
the big cores' frequency caps and the watched temperatures, run ``benchmark_model`` pinned to
the big cores ``repeats`` times (each run: ``warmup`` warmup invokes, then at least
``invokes`` timed ones), record again. The tool prints each run's average, not a median, so the
latency is the median of the runs' averages; when the runs disagree by more than
``max_spread`` (IQR / median) up to ``max_extra_rounds`` runs are added, then the entry is
flagged ``stable: false``. Runs made on a throttled phone (a capped big core, a watched zone
above the profile's ``max_temp_c``, a thermal gate that timed out) are repeated after a cooldown
(``AdbConfig.throttle_retries``) and else kept with ``throttled: true``: a rerun of the
profile measures them again.

A fixed reference block is timed first and again every ``window`` models; every figure is
scaled by ``reference baseline / reference now`` (the baseline comes from the LUT when
resuming), as on the host, so a resumed run is on the same scale. Raw medians are kept.

benchmark_model runs warm: back-to-back invokes of one model. Entries therefore hold the warm
context only (``warm_*``); the LUT uses it as the in-network figure.
"""

from __future__ import annotations

import hashlib
import shlex
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from latency.android.benchmark_output import BenchmarkRun, parse_benchmark_output
from latency.android.binary import BenchmarkBinary, check_abi, find_benchmark_binary
from latency.android.config import AdbConfig
from latency.android.cores import offline_error, parse_offline_line
from latency.android.device import AndroidDevice
from latency.android.errors import (
    BenchmarkBinaryError,
    BenchmarkFailedError,
    BenchmarkOutputError,
    DeviceCommandError,
)
from latency.android.run_report import ModelReport, parse_run_report, throttle_reasons
from latency.host import MeasureConfig
from latency.stats import LatencyStats, relative_spread, summarize

__all__ = [
    "BenchmarkFailures",
    "PhoneBenchmark",
    "PhoneMeasurement",
    "measure_models",
    "runs_of",
]

_SIGNALS = {134: "SIGABRT", 135: "SIGBUS", 137: "SIGKILL", 139: "SIGSEGV"}


@dataclass(frozen=True)
class PhoneMeasurement:
    """One model timed on a phone: the runs' averages, drift-corrected."""

    warm: LatencyStats
    raw_warm_median_us: float
    rounds: int
    spread: float
    stable: bool
    throttled: bool
    throttle_reason: str
    seconds: float
    baseline_us: float
    first_us: float
    init_us: float
    max_temp_c: float | None
    gate_wait_s: int

    def to_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {f"warm_{k}": v for k, v in self.warm.to_dict().items()}
        entry.update(
            raw_warm_median_us=self.raw_warm_median_us,
            rounds=self.rounds,
            spread=self.spread,
            stable=self.stable,
            throttled=self.throttled,
            first_inference_us=self.first_us,
            init_us=self.init_us,
            gate_wait_s=self.gate_wait_s,
            measured_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
        if self.max_temp_c is not None:
            entry["max_temp_c"] = self.max_temp_c
        if self.throttled:
            entry["throttle_reason"] = self.throttle_reason
        return entry


class BenchmarkFailures(BenchmarkFailedError):
    """benchmark_model failed on some models; every other model was measured and saved."""

    def __init__(self, failed: dict[Any, BenchmarkFailedError], stopped: bool) -> None:
        self.failed = failed
        each = "\n".join(f"- {str(e).splitlines()[0]}" for e in list(failed.values())[:5])
        first = next(iter(failed.values()))
        what = (
            f"benchmark_model failed on {len(failed)} model(s) in a row, so profiling stopped"
            if stopped
            else f"benchmark_model failed on {len(failed)} model(s); every other model is "
            "measured and saved"
        )
        super().__init__(
            f"{what}:\n{each}\nFirst failure in full: {first}\nRun the same command again "
            "to retry the failed models (finished ones are kept)"
        )


def runs_of(report: ModelReport, source: str, hint: str = "") -> list[BenchmarkRun]:
    """The parsed runs of one model, or :class:`BenchmarkFailedError` saying how it failed
    (``hint``: the command that reproduces the run)."""
    runs = []
    for run in report.runs:
        if run.exit_code != 0:
            if run.exit_code == 124:
                how = "was killed after the run timeout (exit status 124)"
            elif run.exit_code in _SIGNALS:
                how = f"crashed ({_SIGNALS[run.exit_code]}, exit status {run.exit_code})"
            elif run.exit_code < 0:
                how = "was cut off (the report ends inside its output)"
            else:
                how = f"exited with status {run.exit_code}"
            tail = "\n".join(f"  | {x}" for x in run.output.strip().splitlines()[-8:])
            raise BenchmarkFailedError(
                f"benchmark_model {how} on {source} (run {run.index}). Last lines:\n"
                f"{tail or '  | (no output)'}"
                + (f"\nRun it by hand to see more: {hint}" if hint else "")
            )
        try:
            runs.append(parse_benchmark_output(run.output, source=source))
        except BenchmarkOutputError as exc:
            raise BenchmarkFailedError(str(exc)) from None
    if not runs:
        raise BenchmarkFailedError(f"benchmark_model was not run on {source}")
    return runs


class PhoneBenchmark:
    """A phone as a latency device: models are timed with ``benchmark_model`` through
    ``phone``, the :class:`AndroidDevice` that does all the adb I/O. Use as a context
    manager (or call :meth:`close`: this session's results are removed from the phone)."""

    def __init__(self, phone: AndroidDevice, measure: MeasureConfig | None = None) -> None:
        self.phone = phone
        self.name = phone.serial
        self.config = measure or MeasureConfig()
        self._binary: BenchmarkBinary | None = None

    @property
    def serial(self) -> str:
        return self.phone.serial

    @property
    def adb(self) -> AdbConfig:
        """The phone's settings (timeouts, cooldown, thermal gate, binary)."""
        return self.phone.adb

    # ---- context -----------------------------------------------------------------------------
    def __enter__(self) -> PhoneBenchmark:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Clean up the phone session (see :meth:`AndroidDevice.close`)."""
        self.phone.close()

    # ---- provenance --------------------------------------------------------------------------
    def fingerprint(self) -> dict[str, Any]:
        """Who the phone is (its ``id`` hashes model, board, build and ABI) and its state."""
        phone = self.phone
        info, prof = phone.info(), phone.profile()
        p = info.props
        ident = {
            "kind": "android",
            "model": p.get("ro.product.model", ""),
            "board": p.get("ro.product.board") or p.get("ro.board.platform", ""),
            "build_fingerprint": p.get("ro.build.fingerprint", ""),
            "abi": p.get("ro.product.cpu.abi", ""),
        }
        dev_id = "android-" + hashlib.sha256(repr(sorted(ident.items())).encode()).hexdigest()[
            :12
        ]
        return {
            "id": dev_id,
            **ident,
            "serial": phone.serial,
            "manufacturer": p.get("ro.product.manufacturer", ""),
            "soc": prof.soc,
            "platform": p.get("ro.board.platform", ""),
            "hardware": p.get("ro.hardware", ""),
            "android": p.get("ro.build.version.release", ""),
            "sdk": p.get("ro.build.version.sdk", ""),
            "abilist": phone.abilist(),
            "profile": prof.name,
            "big_cores": list(prof.big_cores),
            "taskset_mask": prof.mask,
            "cpu_max_freq_khz": {str(c): f for c, f in sorted(info.max_freqs_khz.items())},
            "cpu_governors": {str(c): g for c, g in sorted(info.governors.items())},
            "thermal_zones": sorted(info.temps_c),
            "watched_zones": list(phone.watched_zones()),
        }

    def binary(self) -> BenchmarkBinary:
        """The benchmark binary (found, read, ABI-checked against this phone)."""
        if self._binary is None:
            binary = find_benchmark_binary(self.adb.binary, self.adb.binary_dir)
            check_abi(binary.abi, self.phone.abilist(), binary.path)
            self._binary = binary
        return self._binary

    def push_binary(self) -> str:
        """The binary's path on the phone (pushed once per content hash)."""
        return self.phone.push_once(self.binary().path, "bin", "benchmark_model", mode=0o755)

    def runtime(self) -> str:
        b = self.binary()
        return (
            f"TFLite benchmark_model (sha256 {b.short_hash}, {b.abi}) on Android, "
            f"pinned to cores {','.join(map(str, self.phone.profile().big_cores))}"
        )

    def measure_settings(self) -> dict[str, Any]:
        """The settings that shape the figures (recorded in the LUT's provenance); refuses
        more threads than the profile has big cores, and big cores that are offline now
        (:class:`~latency.android.errors.CoresOfflineError`)."""
        prof = self.phone.profile()
        self.phone.check_cores()
        if self.config.threads > prof.max_threads:
            raise BenchmarkBinaryError(
                f"--threads {self.config.threads} is more than the {prof.max_threads} big "
                f"cores of {prof.name}; use --threads {prof.max_threads} or fewer"
            )
        adb = asdict(self.adb)
        return {
            **asdict(self.config),
            "benchmark_runs": self.config.repeats,
            "num_runs": self.config.invokes,
            "warmup_runs": self.config.warmup,
            "min_secs": adb["min_secs"],
            "cooldown_s": adb["cooldown_s"],
            "gate_temp_c": prof.cooldown_temp_c,
            "max_temp_c": prof.max_temp_c,
            "gate_timeout_s": adb["gate_timeout_s"],
            "taskset_mask": prof.mask,
        }

    # ---- benchmarking ------------------------------------------------------------------------
    def run_benchmark(
        self,
        models: Sequence[str],
        *,
        runs: int,
        cooldown: bool,
        on_progress: Callable[[str], None] | None = None,
    ) -> list[ModelReport]:
        """Run ``run_benchmark.sh`` on already pushed ``models``; the parsed report.

        A report cut short raises :class:`DeviceDisconnectedError`/:class:`DeviceTimeoutError`
        from the transport, or :class:`DeviceCommandError` if the script itself failed; a
        pinned core found offline before or after a run raises
        :class:`~latency.android.errors.CoresOfflineError`.
        """
        phone, prof, cfg, adb = self.phone, self.phone.profile(), self.config, self.adb
        binary = self.push_binary()
        report = phone.new_result_file()
        args = [
            "-b", binary, "-o", report, "-m", prof.mask,
            "-k", ",".join(map(str, prof.big_cores)), "-z", ",".join(phone.watched_zones()),
            "-t", str(cfg.threads), "-w", str(cfg.warmup), "-n", str(cfg.invokes),
            "-r", str(runs), "-s", f"{adb.min_secs:g}",
            "-c", f"{adb.cooldown_s:g}" if cooldown else "0",
            "-g", str(round(prof.cooldown_temp_c * 1000)), "-G", f"{adb.gate_timeout_s:.0f}",
            "-T", f"{adb.run_timeout_s:.0f}", "--", *models,
        ]
        # silent stretches: one benchmark run, one gate poll, one cooldown
        idle = adb.run_timeout_s + adb.cooldown_s + adb.io_timeout_s
        res = phone.run_script("run_benchmark.sh", args, idle_timeout=idle, on_stdout=on_progress)
        offline = parse_offline_line(res.stdout)
        if offline is not None:  # a pinned core went offline since the check: nothing saved
            raise offline_error(
                self.serial, prof.big_cores, offline[0], offline[1],
                chosen=adb.cores is not None, during=True,
            )  # fmt: skip
        if res.exit_code != 0:
            raise DeviceCommandError(
                f"run_benchmark.sh failed on phone {self.serial} (exit {res.exit_code}): "
                f"{(res.stderr or res.stdout).strip()[-500:]}"
            )
        text = phone.read_file(report).decode(errors="replace")
        reports, done = parse_run_report(text)
        if not done:
            raise DeviceCommandError(
                f"the benchmark report {report} on phone {self.serial} is incomplete; run the "
                "same command again to resume"
            )
        return reports

    def measure(
        self,
        models: Sequence[tuple[Any, Path]],
        reference: Path,
        baseline_us: float | None = None,
        on_done: Callable[[Any, PhoneMeasurement], None] | None = None,
    ) -> dict[Any, PhoneMeasurement]:
        """Time every ``(key, path)`` model on the phone (see :func:`measure_models`)."""
        return measure_models(self, models, Path(reference), baseline_us, on_done)


def _bench(
    dev: PhoneBenchmark, remote: str, runs: int, cooldown: bool, source: str
) -> tuple[list[BenchmarkRun], ModelReport]:
    reports = dev.run_benchmark([remote], runs=runs, cooldown=cooldown)
    if len(reports) != 1:
        raise BenchmarkFailedError(f"the benchmark report for {source} holds no model")
    hint = f"adb -s {dev.serial} shell {shlex.quote(dev.push_binary())} --graph=" + (
        shlex.quote(remote)
    )
    return runs_of(reports[0], source, hint), reports[0]


def _measure_one(
    dev: PhoneBenchmark, remote: str, source: str, cooldown: bool, factor: float,
    baseline: float,
) -> PhoneMeasurement:
    cfg, adb, prof = dev.config, dev.adb, dev.phone.profile()
    started = time.perf_counter()
    runs, report = _bench(dev, remote, cfg.repeats, cooldown, source)
    reasons = throttle_reasons(report, prof.max_temp_c)
    for _ in range(adb.throttle_retries):
        if not reasons:
            break
        runs, report = _bench(dev, remote, cfg.repeats, True, source)
        reasons = throttle_reasons(report, prof.max_temp_c)
    spread = relative_spread([r.avg_us for r in runs]) if len(runs) > 1 else 0.0
    if spread > cfg.max_spread and cfg.max_extra_rounds > 0:
        extra, extra_report = _bench(dev, remote, cfg.max_extra_rounds, False, source)
        runs += extra
        reasons += throttle_reasons(extra_report, prof.max_temp_c)
        spread = relative_spread([r.avg_us for r in runs])
    avgs = [r.avg_us for r in runs]
    return PhoneMeasurement(
        warm=summarize([a * factor for a in avgs]),
        raw_warm_median_us=float(statistics.median(avgs)),
        rounds=len(runs),
        spread=spread,
        stable=spread <= cfg.max_spread,
        throttled=bool(reasons),
        throttle_reason="; ".join(reasons),
        seconds=time.perf_counter() - started,
        baseline_us=baseline,
        first_us=float(statistics.median(r.first_us for r in runs)),
        init_us=float(statistics.median(r.init_us for r in runs)),
        max_temp_c=report.max_temp_c,
        gate_wait_s=report.gate_waited_s,
    )


def measure_models(
    dev: PhoneBenchmark,
    models: Sequence[tuple[Any, Path]],
    reference: Path,
    baseline_us: float | None = None,
    on_done: Callable[[Any, PhoneMeasurement], None] | None = None,
) -> dict[Any, PhoneMeasurement]:
    """Time every ``(key, path)`` model on the phone; ``on_done`` gets each one at once.

    Device errors (lost connection, timeout, refused push) propagate at once; models that
    ``benchmark_model`` fails on are skipped and raised together at the end
    (:class:`BenchmarkFailures`), or at once after ``max_failures`` failures in a row with
    no success.
    """
    cfg, adb = dev.config, dev.adb
    dev.measure_settings()  # validates threads against the big cores
    ref_remote = dev.phone.push_model(reference)
    results: dict[Any, PhoneMeasurement] = {}
    failed: dict[Any, BenchmarkFailedError] = {}
    in_a_row = 0
    first = True
    factor = 1.0
    baseline = baseline_us
    for i, (key, path) in enumerate(models):
        if i % cfg.window == 0:
            ref_runs, _ = _bench(dev, ref_remote, cfg.repeats, not first, "the reference block")
            first = False
            ref_now = statistics.median(r.avg_us for r in ref_runs)
            baseline = baseline if baseline is not None else ref_now
            factor = baseline / ref_now
        assert baseline is not None
        remote = dev.phone.push_model(Path(path))
        try:
            m = _measure_one(dev, remote, Path(path).name, not first, factor, baseline)
        except BenchmarkFailedError as exc:
            failed[key] = exc
            in_a_row += 1
            if in_a_row >= adb.max_failures and not results:
                raise BenchmarkFailures(failed, stopped=True) from None
            continue
        first = False
        in_a_row = 0
        results[key] = m
        if on_done is not None:
            on_done(key, m)
    if failed:
        raise BenchmarkFailures(failed, stopped=False)
    return results
