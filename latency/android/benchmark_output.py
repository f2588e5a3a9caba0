"""Parse the output of TFLite's ``benchmark_model`` tool into numbers (pure functions).

The format, as recorded from real runs (``tests/data/benchmark_model/``, TFLite 2.4 to the
current nightlies; Android via ``adb shell`` and Linux aarch64/riscv64)::

    Num threads: [4]
    The input model file size (MB): 16.9008
    Initialized session in 17.187ms.
    Running benchmark for at least 1 iterations and at least 0.5 seconds but ...   <- warmup
    count=1 curr=3512391                                                          <- its stats
    Running benchmark for at least 50 iterations and at least 1 seconds but ...   <- timed runs
    count=50 first=2990275 curr=2913402 min=2727568 max=3189954 avg=2.95034e+06 std=109798
    Inference timings in us: Init: 17187, First inference: 3512391, Warmup (avg): 3.51239e+06, ...
    Memory footprint delta from the start of the tool (MB): init=4.21094 overall=46.0859

Details that matter:

* the summary line goes on with ``Inference (avg): 2.95034e+06`` (cut here for width);
* every timing is in microseconds except ``Initialized session in ...ms``;
* numbers are C++ ``ostream`` output: 6 significant digits, so ``2.95034e+06`` appears;
* the warmup phase's stats line comes first, the timed runs' second. A warmup of a single
  iteration prints only ``count=1 curr=...``. Newer tools append ``p5= median= p95=``;
* newer tools prefix every line with ``INFO: `` (errors ``ERROR: ``); logcat adds its own
  prefix. The parser searches inside lines, so prefixes do not matter;
* TFLite 2.4 printed ``Peak memory footprint (MB): init=... overall=...`` instead of
  ``Memory footprint delta ...``; newer tools may add
  ``Overall peak memory footprint (MB) via periodic monitoring: X``;
* with ``--enable_op_profiling`` the profiler prints ``Timings (microseconds): count=...``
  lines: sums of per-operator times, not run latencies. They are ignored;
* the tool prints no median of run *averages*: run the binary several times and use
  :func:`median_of_runs` / :func:`summarize_runs`.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from latency.android.errors import BenchmarkOutputError
from latency.errors import MeasurementError

if TYPE_CHECKING:
    from latency.stats import LatencyStats

__all__ = [
    "BenchmarkOutputError",
    "BenchmarkRun",
    "median_of_runs",
    "parse_benchmark_output",
    "summarize_runs",
]

TAIL_LINES = 10

_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_SUMMARY = re.compile(
    rf"Inference timings in us: Init: (?P<init>{_NUM}), First inference: (?P<first>{_NUM}), "
    rf"Warmup \(avg\): (?P<warmup>{_NUM}), Inference \(avg\): (?P<avg>{_NUM})"
)
_OLD_SUMMARY = re.compile(r"Average inference timings in us:")
_PHASE = re.compile(r"Running benchmark for (?:at least )?\d+ iterations")
_STATS = re.compile(r"(?:^|[\s:])count=\d+(?:\s|$)")
_PROFILER_MARKERS = ("Timings (microseconds)", "Memory (bytes)")
_KEY_VALUE = re.compile(rf"\b(\w+)=({_NUM})(?=\s|$)")
_THREADS = re.compile(r"Num threads: \[(\d+)\]")
_THREADS_USED = re.compile(r"#threads used for CPU inference: \[(\d+)\]")
_MODEL_SIZE = re.compile(rf"The input model file size \(MB\): ({_NUM})")
_SESSION = re.compile(rf"Initialized session in ({_NUM})\s*ms")
_MEMORY = re.compile(
    rf"(?:Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\): "
    rf"init=({_NUM}) overall=({_NUM})"
)
_PEAK_MEMORY = re.compile(
    rf"Overall peak memory footprint \(MB\) via periodic monitoring: ({_NUM})"
)
# Lines that say why the tool stopped (its own messages, the shell's, the dynamic linker's).
_FAILURE = re.compile(
    r"Segmentation fault|Aborted|Killed|Bus error|Failed to|Could not|Benchmarking failed|"
    r"^\s*ERROR:|CANNOT LINK EXECUTABLE|not found|Permission denied|No such file|"
    r"terminate called|Fatal signal",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class BenchmarkRun:
    """One run of ``benchmark_model``: numbers only, microseconds unless the name says so.

    ``avg_us``/``min_us``/``max_us``/``std_us``/``count`` describe the timed runs (after
    warmup); ``median_us``/``p5_us``/``p95_us`` are those runs' percentiles, printed only by
    newer tools. Fields the tool did not print are ``None``.
    """

    init_us: float
    first_us: float
    warmup_avg_us: float
    avg_us: float
    min_us: float
    max_us: float
    std_us: float
    count: int
    warmup_count: int | None = None
    median_us: float | None = None
    p5_us: float | None = None
    p95_us: float | None = None
    threads: int | None = None
    model_size_mb: float | None = None
    session_init_ms: float | None = None
    mem_init_mb: float | None = None
    mem_overall_mb: float | None = None
    mem_peak_mb: float | None = None

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def parse_benchmark_output(text: str, *, source: str = "") -> BenchmarkRun:
    """Numbers of one ``benchmark_model`` run from its combined stdout/stderr.

    ``source`` (e.g. ``"model.tflite on R58M12345"``) only makes error messages clearer.
    Raises :class:`BenchmarkOutputError` when the text holds no timing summary (the binary
    crashed or refused the model), more than one run, or an inconsistent summary.
    """
    lines = text.splitlines()
    end = _summary_line(lines, source)
    summary = _SUMMARY.search(lines[end])
    assert summary is not None

    warmup, timed = _run_stats(lines[:end])
    if timed is None:
        raise _error(
            "has a timing summary but no statistics line of the timed runs "
            "('count=N first=... min=... max=... avg=... std=...')",
            lines, source,
            hint="keep the whole output of benchmark_model; do not filter it with grep",
        )
    missing = [k for k in ("count", "min", "max", "avg", "std") if k not in timed]
    if missing:
        raise _error(
            f"has a statistics line of the timed runs without {', '.join(missing)}",
            lines, source,
            hint="the run may have been cut short; rerun with --num_runs of at least 2",
        )

    avg_us = float(summary["avg"])
    if not math.isclose(avg_us, timed["avg"], rel_tol=1e-3):
        raise _error(
            f"is inconsistent: 'Inference (avg): {summary['avg']}' but the timed runs' "
            f"statistics say avg={timed['avg']:g}",
            lines, source,
            hint="the output mixes two runs; capture one benchmark_model invocation per file",
        )
    count = int(timed["count"])
    if count < 1 or avg_us <= 0:
        raise _error(f"reports {count} timed runs averaging {avg_us:g} us", lines, source)

    mem = _search_last(_MEMORY, lines)
    return BenchmarkRun(
        init_us=float(summary["init"]),
        first_us=float(summary["first"]),
        warmup_avg_us=float(summary["warmup"]),
        avg_us=avg_us,
        min_us=timed["min"],
        max_us=timed["max"],
        std_us=timed["std"],
        count=count,
        warmup_count=int(warmup["count"]) if warmup is not None and "count" in warmup else None,
        median_us=timed.get("median"),
        p5_us=timed.get("p5"),
        p95_us=timed.get("p95"),
        threads=_int_or_none(_search_first(_THREADS, lines) or _search_first(_THREADS_USED, lines)),
        model_size_mb=_float_or_none(_search_first(_MODEL_SIZE, lines)),
        session_init_ms=_float_or_none(_search_first(_SESSION, lines)),
        mem_init_mb=float(mem[1]) if mem else None,
        mem_overall_mb=float(mem[2]) if mem else None,
        mem_peak_mb=_float_or_none(_search_first(_PEAK_MEMORY, lines)),
    )


def median_of_runs(runs: Sequence[BenchmarkRun]) -> float:
    """Median of the runs' ``avg_us``: the latency figure of several runs of the binary."""
    if not runs:
        raise MeasurementError(
            "no benchmark_model runs to take the median of; run the binary at least once "
            "(3 or more runs give a robust median)"
        )
    return float(statistics.median(run.avg_us for run in runs))


def summarize_runs(runs: Sequence[BenchmarkRun]) -> LatencyStats:
    """Robust summary (median, p10, p90, IQR, ...) of the runs' ``avg_us``."""
    if not runs:
        raise MeasurementError(
            "no benchmark_model runs to summarize; run the binary at least once "
            "(3 or more runs give a robust median)"
        )
    from latency.stats import summarize  # numpy: imported only when needed

    return summarize([run.avg_us for run in runs])


# -- helpers ---------------------------------------------------------------------------------


def _summary_line(lines: Sequence[str], source: str) -> int:
    """The index of the one timing-summary line, or the error saying why there is none."""
    summaries = [i for i, line in enumerate(lines) if _SUMMARY.search(line)]
    if not summaries:
        if any(_OLD_SUMMARY.search(line) for line in lines):
            raise _error(
                "is from a TFLite 1.x benchmark_model ('Average inference timings in us: "
                "Warmup: ..., Init: ..., ...'), which this parser does not read",
                lines, source,
                hint="use the current android_aarch64 benchmark_model prebuilt (TFLite >= 2.4)",
            )
        raise _error(
            "has no timing summary ('Inference timings in us: Init: ..., Inference (avg): ...'),"
            " so nothing was measured",
            lines, source,
        )
    if len(summaries) > 1:
        raise _error(
            f"holds {len(summaries)} runs ({len(summaries)} 'Inference timings in us' lines)",
            lines, source,
            hint="parse the output of one benchmark_model invocation at a time; for logcat "
            "output clear the log (adb logcat -c) before each run",
        )
    return summaries[0]


def _run_stats(lines: Sequence[str]) -> tuple[dict[str, float] | None, dict[str, float] | None]:
    """(warmup stats, timed-run stats) from the lines before the summary.

    With ``Running benchmark for ...`` headers the first phase is the warmup and the last
    one the timed runs. Without them (a pasted tail) the last stats line is the timed runs
    and the one before it, if any, the warmup.
    """
    phase = 0
    found: list[tuple[int, dict[str, float]]] = []
    for line in lines:
        if _PHASE.search(line):
            phase += 1
        elif _STATS.search(line) and not any(m in line for m in _PROFILER_MARKERS):
            found.append((phase, {k: float(v) for k, v in _KEY_VALUE.findall(line)}))
    if not found:
        return None, None
    if phase == 0:
        return (found[-2][1] if len(found) > 1 else None), found[-1][1]
    warmup = next((stats for p, stats in found if p == 1), None)
    timed = next((stats for p, stats in reversed(found) if p >= 2), None)
    return warmup, timed


def _search_first(pattern: re.Pattern[str], lines: Sequence[str]) -> str | None:
    for line in lines:
        m = pattern.search(line)
        if m:
            return m[1]
    return None


def _search_last(pattern: re.Pattern[str], lines: Sequence[str]) -> re.Match[str] | None:
    for line in reversed(lines):
        m = pattern.search(line)
        if m:
            return m
    return None


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value is not None else None


def _float_or_none(value: str | None) -> float | None:
    return float(value) if value is not None else None


def _error(
    problem: str, lines: Sequence[str], source: str, *, hint: str | None = None
) -> BenchmarkOutputError:
    tail = tuple(line for line in lines if line.strip())[-TAIL_LINES:]
    reason = next((line.strip() for line in lines if _FAILURE.search(line)), None)
    what = f"benchmark_model output for {source}" if source else "benchmark_model output"
    parts = [f"{what} {problem}."]
    if not tail:
        parts.append("The output is empty: the binary did not run (check the adb connection "
                     "and that benchmark_model is executable on the device).")
    else:
        if reason:
            parts.append(f"The tool reported: {reason!r}.")
        parts.append(f"Last {len(tail)} lines of the output:")
        parts.extend(f"  | {line}" for line in tail)
    parts.append(
        "Fix: "
        + (hint or "the binary may have crashed or rejected the model; run it by hand, e.g. "
           "`adb shell /data/local/tmp/benchmark_model --graph=/data/local/tmp/model.tflite "
           "--num_threads=1`, and read the full output (and `adb logcat` for crashes)")
        + "."
    )
    return BenchmarkOutputError("\n".join(parts), tail=tail, reason=reason)
