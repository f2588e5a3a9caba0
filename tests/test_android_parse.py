"""latency.android.benchmark_output on recorded real benchmark_model output.

Every file in tests/data/benchmark_model/ is real output copied verbatim from a public
repository or issue (first line: ``# source: ...``). The expected numbers below were read
off those texts by hand.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from latency.android.benchmark_output import (
    TAIL_LINES,
    BenchmarkOutputError,
    BenchmarkRun,
    median_of_runs,
    parse_benchmark_output,
    summarize_runs,
)
from latency.errors import MeasurementError

DATA = Path(__file__).parent / "data" / "benchmark_model"


def recorded(name: str) -> str:
    """A recorded output without its ``# source:`` header line."""
    header, _, body = (DATA / name).read_text().partition("\n")
    assert header.startswith("# source: "), f"{name} lacks its '# source:' header"
    return body


EXPECTED: dict[str, dict[str, float | int | None]] = {
    # TFLite 2.4.0 on a Xiaomi Mi11 (tail of the output only).
    "tf2.4_android_mi11_cpu_fp32.txt": dict(
        init_us=16242, first_us=360262, warmup_avg_us=304586, avg_us=249684,
        min_us=247067, max_us=254474, std_us=1442, count=50, warmup_count=None,
        median_us=None, threads=None, model_size_mb=None, session_init_ms=None,
        mem_init_mb=4.92969, mem_overall_mb=138.809, mem_peak_mb=None,
    ),
    # 2021 nightly on the same phone: "Memory footprint delta" replaces "Peak memory".
    "nightly2021_android_mi11_nnapi_fp16.txt": dict(
        init_us=449051, first_us=128300, warmup_avg_us=113531, avg_us=99646.2,
        min_us=96919, max_us=103964, std_us=1369, count=50, warmup_count=None,
        mem_init_mb=8.23828, mem_overall_mb=62.3242,
    ),
    # Full output with op profiling; scientific notation; a 1-iteration warmup line.
    "tf_riscv_qemu_op_profiling.txt": dict(
        init_us=17187, first_us=3512391, warmup_avg_us=3.51239e06, avg_us=2.95034e06,
        min_us=2727568, max_us=3189954, std_us=109798, count=50, warmup_count=1,
        median_us=None, threads=4, model_size_mb=16.9008, session_init_ms=17.187,
        mem_init_mb=4.21094, mem_overall_mb=46.0859,
    ),
    # Current nightly: "INFO: " prefixes, p5/median/p95 on the stats lines.
    "nightly_linux_aarch64_info_prefix_percentiles.txt": dict(
        init_us=6395, first_us=2761, warmup_avg_us=3243.58, avg_us=2942.27,
        min_us=2605, max_us=20356, std_us=1190, count=337, warmup_count=153,
        median_us=2781, p5_us=2647, p95_us=3169, threads=4, model_size_mb=13.9193,
        session_init_ms=6.395, mem_init_mb=39.4531, mem_overall_mb=40.8281, mem_peak_mb=None,
    ),
}


def test_every_recorded_file_is_covered():
    names = {p.name for p in DATA.glob("*.txt")}
    failures = {"crash_segfault_pixel4.txt", "failed_nnapi_delegate_mi11.txt"}
    assert names == set(EXPECTED) | failures


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recorded_output_parses_to_the_printed_numbers(name):
    run = parse_benchmark_output(recorded(name))
    for field, value in EXPECTED[name].items():
        got = getattr(run, field)
        if value is None:
            assert got is None, field
        else:
            assert got == pytest.approx(value, rel=1e-9), field


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fields_are_numbers_never_strings(name):
    run = parse_benchmark_output(recorded(name))
    for field in dataclasses.fields(BenchmarkRun):
        value = getattr(run, field.name)
        assert value is None or type(value) in (int, float), (field.name, value)
    assert isinstance(run.count, int) and isinstance(run.avg_us, float)
    assert set(run.to_dict()) == {f.name for f in dataclasses.fields(BenchmarkRun)}


def test_op_profiler_timings_are_not_taken_for_run_timings():
    # The profiler's own "Timings (microseconds): count=50 ... min=2727203 avg=2.9499e+06"
    # line comes after the summary and is a sum of per-op times, not the run statistics.
    run = parse_benchmark_output(recorded("tf_riscv_qemu_op_profiling.txt"))
    assert run.min_us == 2727568 and run.min_us != 2727203
    assert run.avg_us == 2950340.0


def test_warmup_and_timed_lines_are_told_apart_by_their_phase_headers():
    # Warmup: count=153 ... avg=3243.58; timed runs: count=337 ... avg=2942.27.
    run = parse_benchmark_output(recorded("nightly_linux_aarch64_info_prefix_percentiles.txt"))
    assert (run.warmup_count, run.count) == (153, 337)
    assert run.warmup_avg_us == 3243.58 and run.avg_us == 2942.27


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_logcat_prefix_and_crlf_do_not_matter(name):
    text = recorded(name)
    logcat = "".join(
        f"07-08 15:34:26.202 I/tflite  ( 5395): {line}\r\n" for line in text.splitlines()
    )
    assert parse_benchmark_output(logcat) == parse_benchmark_output(text)


# -- failures ----------------------------------------------------------------------------------


def test_crash_raises_with_the_tail_and_a_hint():
    text = recorded("crash_segfault_pixel4.txt")
    with pytest.raises(BenchmarkOutputError) as info:
        parse_benchmark_output(text, source="serving_default.tflite on Pixel 4")
    err = info.value
    assert isinstance(err, MeasurementError)
    message = str(err)
    assert "serving_default.tflite on Pixel 4" in message
    assert "no timing summary" in message
    assert err.reason == "Segmentation fault"
    assert len(err.tail) == TAIL_LINES and err.tail[-1] == "Segmentation fault"
    assert err.tail[0] == "Num threads: [1]"
    for line in err.tail:
        assert f"| {line}" in message
    assert "--graph=" in message  # how to rerun it by hand
    assert "Unconsumed cmdline flags" not in message  # older than the last 10 lines


def test_tool_error_names_the_first_error_line():
    with pytest.raises(BenchmarkOutputError) as info:
        parse_benchmark_output(recorded("failed_nnapi_delegate_mi11.txt"))
    err = info.value
    assert "ANEURALNETWORKS_BAD_DATA" in (err.reason or "")
    assert err.tail[-1] == "Benchmarking failed."
    assert "Failed to apply NNAPI delegate." in str(err)


@pytest.mark.parametrize(
    "text",
    ["", "\n\n", "adb: error: device offline\n", "/system/bin/sh: benchmark_model: not found\n",
     "\x00\x1b[31m garbage ]]] count=\n" * 3],
)
def test_garbage_raises(text):
    with pytest.raises(BenchmarkOutputError) as info:
        parse_benchmark_output(text)
    if not text.strip():
        assert "empty" in str(info.value)
    else:
        assert info.value.tail and "Fix:" in str(info.value)


def test_two_runs_in_one_text_are_refused():
    text = recorded("tf2.4_android_mi11_cpu_fp32.txt") + recorded(
        "nightly2021_android_mi11_nnapi_fp16.txt"
    )
    with pytest.raises(BenchmarkOutputError, match="holds 2 runs"):
        parse_benchmark_output(text)


def test_summary_without_the_timed_stats_line_is_refused():
    text = recorded("nightly_linux_aarch64_info_prefix_percentiles.txt")
    text = text.replace(
        "INFO: count=337 first=2881 curr=2703 min=2605 max=20356 avg=2942.27 std=1190 "
        "p5=2647 median=2781 p95=3169\n",
        "",
    )
    with pytest.raises(BenchmarkOutputError, match="no statistics line of the timed runs"):
        parse_benchmark_output(text)
    only_summary = "\n".join(
        line for line in recorded("tf2.4_android_mi11_cpu_fp32.txt").splitlines()
        if "count=" not in line
    )
    with pytest.raises(BenchmarkOutputError, match="do not filter it with grep"):
        parse_benchmark_output(only_summary)


def test_summary_disagreeing_with_the_stats_line_is_refused():
    text = recorded("tf2.4_android_mi11_cpu_fp32.txt").replace("avg=249684", "avg=199684")
    with pytest.raises(BenchmarkOutputError, match="inconsistent"):
        parse_benchmark_output(text)


def test_tflite_1x_summary_is_named_as_such():
    # The summary line of TFLite 1.x benchmark_model (from its README of the time).
    text = (
        "Running benchmark for at least 50 iterations and at least 1 seconds\n"
        "count=50 first=79449 curr=81350 min=77385 max=88213 avg=79732 std=1929\n"
        "Average inference timings in us: Warmup: 83235, Init: 38467, Inference: 79760.9\n"
    )
    with pytest.raises(BenchmarkOutputError, match=r"TFLite 1\.x"):
        parse_benchmark_output(text)


# -- several runs --------------------------------------------------------------------------------


def _runs(*avgs: float) -> list[BenchmarkRun]:
    base = parse_benchmark_output(recorded("tf2.4_android_mi11_cpu_fp32.txt"))
    return [dataclasses.replace(base, avg_us=a) for a in avgs]


def test_median_of_runs():
    assert median_of_runs(_runs(300.0, 100.0, 200.0)) == 200.0
    assert median_of_runs(_runs(100.0, 400.0, 200.0, 300.0)) == 250.0
    assert median_of_runs(_runs(5.0)) == 5.0
    real = [parse_benchmark_output(recorded(n)) for n in sorted(EXPECTED)]
    assert median_of_runs(real) == pytest.approx((99646.2 + 249684) / 2)
    with pytest.raises(MeasurementError, match="at least once"):
        median_of_runs([])


def test_summarize_runs():
    st = summarize_runs(_runs(*[float(x) for x in range(1, 102)]))
    assert (st.median_us, st.p10_us, st.p90_us, st.n) == (51, 11, 91, 101)
    with pytest.raises(MeasurementError):
        summarize_runs([])


def test_import_is_light():
    code = (
        "import sys, latency.android, latency.android.benchmark_output, "
        "latency.android.phones\n"
        "heavy = [m for m in ('numpy', 'tensorflow', 'torch', 'adbutils') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
