"""Real timing with the TFLite interpreter on this CPU."""

from __future__ import annotations

import pytest

from latency.convert import Converter
from latency.host import REFERENCE_SPEC, HostDevice, MeasureConfig
from nas.core.specs import MBConvSpec

pytestmark = pytest.mark.slow

SMALL = MBConvSpec(16, 16, 3, 1, 2, 0.0, "relu", 16, 16)
BIG = MBConvSpec(32, 32, 7, 1, 6, 0.25, "silu", 32, 32)


def test_measure_gives_numbers_in_both_contexts(convert_config, fast_measure):
    conv = Converter(convert_config)
    models = [(s, conv.convert_block(s).path) for s in (SMALL, BIG)]
    ref = conv.convert_block(REFERENCE_SPEC).path
    finished = []
    res = HostDevice(fast_measure).measure(models, ref, on_done=lambda k, m: finished.append(k))
    assert finished == [SMALL, BIG] or set(finished) == {SMALL, BIG}
    for m in res.values():
        assert m.rounds >= fast_measure.repeats
        assert m.warm.n == m.rounds * fast_measure.invokes == m.cold.n
        assert 0 < m.warm.p10_us <= m.warm.median_us <= m.warm.p90_us
        assert m.baseline_us > 0 and m.seconds > 0
        entry = m.to_entry()
        assert isinstance(entry["warm_median_us"], float) and entry["stable"] in (True, False)
    # a 7x7, 6x-expanded block with SE on 4x the pixels must be clearly slower
    assert res[BIG].warm.median_us > 3 * res[SMALL].warm.median_us


def test_given_baseline_scales_results(convert_config, fast_measure):
    conv = Converter(convert_config)
    ref = conv.convert_block(REFERENCE_SPEC).path
    models = [(SMALL, conv.convert_block(SMALL).path)]
    dev = HostDevice(fast_measure)
    first = dev.measure(models, ref)[SMALL]
    doubled = dev.measure(models, ref, baseline_us=2 * first.baseline_us)[SMALL]
    # same machine, baseline twice as large: corrected figures about twice as large
    assert 1.4 < doubled.warm.median_us / first.warm.median_us < 2.8


def test_fingerprint_and_runtime():
    dev = HostDevice(MeasureConfig(threads=2))
    fp = dev.fingerprint()
    assert fp["id"].startswith("host-") and fp["logical_cores"] >= 1 and fp["cpu"]
    assert fp == dev.fingerprint()  # stable
    assert "tensorflow 2.19" in dev.runtime()
    assert dev.measure_settings()["threads"] == 2


def test_bad_model_file_is_a_clear_error(tmp_path, fast_measure):
    from latency.errors import MeasurementError

    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a flatbuffer")
    with pytest.raises(MeasurementError, match=r"bad\.tflite"):
        HostDevice(fast_measure).measure([("x", bad)], bad)


def test_invalid_config():
    with pytest.raises(ValueError, match=">= 1"):
        MeasureConfig(repeats=0)


def test_drift_factors_ignore_one_outlier_round_and_follow_a_step():
    from latency.host import drift_factors

    # the reference reads 100 us, except one round at 62 us (seen on this host)
    ref = [100.0, 101.0, 99.0, 62.0, 100.0, 100.0, 99.0]
    factors = drift_factors(ref, range(len(ref)), baseline_us=100.0)
    assert all(0.98 < f < 1.02 for f in factors)  # the outlier round is not rescaled by 1.6x
    # the machine gets 20% slower from round 5 on: later rounds are scaled back by ~1/1.2
    step = [100.0] * 5 + [120.0] * 6
    later = drift_factors(step, [8, 9, 10], baseline_us=100.0)
    assert all(abs(f - 1 / 1.2) < 1e-9 for f in later)
    assert drift_factors(step, [0], baseline_us=100.0) == [1.0]
