"""bench/lut_repeat.py's comparison on synthetic LUT entries: a common factor is the level,
what is left per entry is the spread."""

from __future__ import annotations

import pytest

FIELDS = ("warm_median_us", "cold_median_us", "raw_warm_median_us", "raw_cold_median_us")


def entry(v: float) -> dict[str, float]:
    return {f: v for f in FIELDS}


def test_level_is_the_common_factor_and_the_spread_what_is_left(bench_script):
    bench = bench_script("lut_repeat")
    assert bench.FIELDS == FIELDS
    a = {str(i): entry(10.0 + i) for i in range(40)}
    b = {k: entry(v["warm_median_us"] * 1.1) for k, v in a.items()}  # 10% slower, uniformly
    b["0"] = entry(a["0"]["warm_median_us"] * 1.1 * 1.5)  # one entry 1.5x off on top
    b["extra"] = entry(1.0)  # held by one LUT only: not compared
    r = bench.compare(a, b)["cold_median_us"]
    assert r["level"] == pytest.approx(1.1 * 1.5 ** (1 / 40))
    assert r["median_abs_diff"] == pytest.approx(1 - 1.5 ** (-1 / 40))  # all but one: level only
    assert r["p5"] == pytest.approx(r["p95"])  # the outlier is beyond the 95th percentile
