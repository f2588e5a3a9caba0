"""bench/lut_repeat.py's comparison on synthetic LUT entries: a common factor is the level,
what is left per entry is the spread."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "lut_repeat.py"


def _bench():
    spec = importlib.util.spec_from_file_location("lut_repeat", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def entry(v: float) -> dict[str, float]:
    return {f: v for f in _bench().FIELDS}


def test_level_is_the_common_factor_and_the_spread_what_is_left():
    bench = _bench()
    a = {str(i): entry(10.0 + i) for i in range(40)}
    b = {k: entry(v["warm_median_us"] * 1.1) for k, v in a.items()}  # 10% slower, uniformly
    b["0"] = entry(a["0"]["warm_median_us"] * 1.1 * 1.5)  # one entry 1.5x off on top
    b["extra"] = entry(1.0)  # held by one LUT only: not compared
    r = bench.compare(a, b)["cold_median_us"]
    assert r["level"] == pytest.approx(1.1 * 1.5 ** (1 / 40))
    assert r["median_abs_diff"] == pytest.approx(1 - 1.5 ** (-1 / 40))  # all but one: level only
    assert r["p5"] == pytest.approx(r["p95"])  # the outlier is beyond the 95th percentile
