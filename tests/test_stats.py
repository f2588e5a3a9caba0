from __future__ import annotations

import numpy as np
import pytest

from latency.stats import relative_spread, summarize


def test_summarize_known_values():
    st = summarize(np.arange(1, 102, dtype=float))  # 1..101
    assert st.median_us == 51 and st.p10_us == 11 and st.p90_us == 91
    assert st.iqr_us == 50 and st.n == 101 and st.mean_us == 51
    assert st.spread == pytest.approx(80 / 51)
    assert set(st.to_dict()) == {
        "median_us",
        "p10_us",
        "p90_us",
        "iqr_us",
        "mean_us",
        "std_us",
        "n",
    }


def test_summarize_is_robust_to_outliers():
    st = summarize([100.0] * 50 + [10_000.0] * 3)
    assert st.median_us == 100 and st.mean_us > 100


def test_relative_spread_and_empty():
    assert relative_spread([90, 100, 110]) == pytest.approx(0.1)
    assert relative_spread([100, 100, 101, 99, 300]) == pytest.approx(0.01)  # one bad round
    with pytest.raises(ValueError):
        summarize([])
