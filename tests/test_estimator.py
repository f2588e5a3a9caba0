from __future__ import annotations

import pytest

from latency.estimator import EstimatorError, LatencyEstimator
from lut import LatencyTable, LutMissError
from nas.core.spaces import get_space, random_genomes
from nas.core.specs import describe, macs

PROV = {"device": {"id": "host-x"}, "runtime": "rt", "threads": 1, "converter": {"v": "1"}}
QUICK = get_space("quick")


def synthetic(spec) -> float:
    """A known, smooth latency law for testing the predictor (not a measurement)."""
    return 5.0 + macs(spec) / 2e4


def table_with(specs, tmp_path, name="lut.json") -> LatencyTable:
    t = LatencyTable.create(tmp_path / name, PROV)
    for s in specs:
        t.add(s, {"warm_median_us": synthetic(s)})
    return t


def test_lut_mode_sums_and_names_missing_blocks(tmp_path):
    arch = QUICK.decode([3, 4, 5])
    est = LatencyEstimator(table_with(arch.blocks, tmp_path))
    assert est(arch) == pytest.approx(sum(synthetic(b) for b in arch.blocks))
    other = QUICK.decode([20, 21, 22])
    with pytest.raises(LutMissError) as exc:
        est.estimate(other)
    assert describe(other.blocks[1]) in str(exc.value)


def test_estimate_many_matches_estimate(tmp_path):
    archs = [QUICK.decode(g) for g in random_genomes(QUICK, 10, seed=0)]
    est = LatencyEstimator(table_with(QUICK.block_specs(), tmp_path))
    many = est.estimate_many(archs)
    assert list(many) == pytest.approx([est(a) for a in archs])


def test_predict_mode_learns_and_reports_cv_error(tmp_path):
    space = get_space("default", 64)
    specs = space.block_specs()
    train, held = specs[::2], specs[1::2]
    est = LatencyEstimator(table_with(train, tmp_path), mode="predict", seed=0)
    rep = est.predictor_report
    assert rep is not None and rep.n_train == len(train) and rep.cv_mape < 0.15
    assert "CV mean abs error" in rep.summary()
    errs = [abs(est.block_latency(s) / synthetic(s) - 1) for s in held[:100]]
    assert sorted(errs)[len(errs) // 2] < 0.10
    assert len(est.table) == len(train)  # predictions are not written into the LUT


def test_predict_needs_data(tmp_path):
    with pytest.raises(EstimatorError, match="at least 10"):
        LatencyEstimator(table_with(QUICK.block_specs()[:3], tmp_path), mode="predict")


def test_bad_modes(tmp_path):
    t = table_with(QUICK.block_specs()[:3], tmp_path)
    with pytest.raises(EstimatorError, match="unknown estimator mode"):
        LatencyEstimator(t, mode="guess")  # type: ignore[arg-type]
    with pytest.raises(EstimatorError, match="needs the device"):
        LatencyEstimator(t, mode="measure")


@pytest.mark.slow
def test_measure_mode_measures_and_saves_missing_blocks(tmp_path, convert_config, fast_measure):
    from latency.host import HostDevice
    from latency.profiler import open_table

    dev = HostDevice(fast_measure)
    table = open_table(tmp_path / "lut.json", dev)
    arch = QUICK.decode([0, 0, 0])
    est = LatencyEstimator(table, mode="measure", device=dev, convert_config=convert_config)
    value = est(arch)
    assert value > 0 and len(table) == len(set(arch.blocks))
    on_disk = LatencyTable.load(tmp_path / "lut.json")
    assert on_disk.lookup(arch) == pytest.approx(value)
    with pytest.raises(Exception, match="another device"):
        LatencyEstimator(
            LatencyTable.load(tmp_path / "lut.json"),
            mode="measure",
            device=HostDevice(fast_measure.__class__(threads=2)),
            convert_config=convert_config,
        )


def test_lut_of_another_device_is_refused_for_lookup(tmp_path):
    from latency.host import HostDevice, MeasureConfig
    from latency.profiler import provenance_for
    from lut import LutMismatchError

    t = LatencyTable.create(tmp_path / "l.json", provenance_for(HostDevice(MeasureConfig())))
    with pytest.raises(LutMismatchError, match="threads"):
        LatencyEstimator(t, device=HostDevice(MeasureConfig(threads=4)))
    with pytest.raises(LutMismatchError, match="device_id"):
        LatencyEstimator(
            table_with(QUICK.block_specs()[:3], tmp_path, "other.json"),
            device=HostDevice(MeasureConfig()),
        )
