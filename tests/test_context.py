"""The size model of the cache context (lut.table.block_alpha, latency.context.fit_size_model)
on synthetic numbers: the per-block formula, its fit, and LUTs of the one-alpha model (older
files) meaning what they meant."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from latency.context import (
    ALPHA_MAX,
    CONTEXT_MODEL,
    ONE_ALPHA,
    block_arrays,
    context_line,
    fit_alpha,
    fit_size_model,
    size_alphas,
)
from lut import LatencyTable
from lut.table import (
    DEFAULT_CONTEXT_ALPHA,
    SIZE_MODEL,
    block_alpha,
    in_network_latency,
    size_alpha,
    working_set_bytes,
)
from nas.core.spaces import get_space, random_genomes
from nas.core.specs import MBConvSpec, params, spec_key

PROV = {"device": {"id": "host-x", "cpu": "cpu"}, "runtime": "rt", "threads": 1,
        "converter": {"v": "1"}}  # fmt: skip
SPACE = get_space("default", 96)


def nets(n: int, seed: int):
    return [SPACE.decode(g) for g in random_genomes(SPACE, n, seed)]


def test_working_set_counts_weights_and_activations():
    spec = MBConvSpec(in_chs=16, out_chs=24, in_h=8, in_w=8, kernel=3, stride=2, exp_ratio=4.0,
                      se_ratio=0.0, act="relu")  # fmt: skip
    acts = 16 * 8 * 8 + 24 * 4 * 4 + 64 * 8 * 8  # input, output, expanded
    assert working_set_bytes(spec) == 4 * (params(spec) + acts)


def test_block_alpha_of_each_context_kind():
    small, big = sorted(set(SPACE.block_specs()), key=working_set_bytes)[:: 770][:2]
    assert block_alpha(small, None) == DEFAULT_CONTEXT_ALPHA
    assert block_alpha(big, {"alpha": 0.3, "nets": 4}) == 0.3  # one alpha: every block alike
    ctx = {"alpha": 0.4, "model": SIZE_MODEL, "params": [0.0, 1.0]}
    lo, hi = block_alpha(small, ctx), block_alpha(big, ctx)
    assert 0.0 < lo < 0.5 < hi < 1.0  # bigger working set: more of the cold penalty
    x = math.log2(working_set_bytes(big) / (1 << 20))
    assert hi == pytest.approx(1 / (1 + math.exp(-x)))
    assert size_alpha(big, 0.0, 1.0) == hi
    assert size_alphas(np.array([working_set_bytes(big)], float), 0.0, 1.0)[0] == pytest.approx(hi)


def synthetic_lut(tmp_path, a: float, b: float, archs):
    """A LUT of the blocks of ``archs`` (warm/cold made up from their sizes) and the whole-net
    latencies the size model (a, b) gives, with 1% noise."""
    t = LatencyTable(provenance=dict(PROV), path=None)
    rng = np.random.default_rng(0)
    for spec in {s for arch in archs for s in arch.blocks}:
        warm = 5.0 + working_set_bytes(spec) / 2e4
        t.add(spec, {"warm_median_us": warm, "cold_median_us": warm * rng.uniform(1.2, 2.0)})
    truth = {"model": SIZE_MODEL, "params": [a, b], "alpha": 0.5}
    measured = []
    for arch in archs:
        cost = sum(in_network_latency(t.entries[spec_key(s)], block_alpha(s, truth))
                   for s in arch.blocks)  # fmt: skip
        measured.append(cost * (1 + rng.normal(0, 0.01)))
    return t, np.array(measured)


def test_fit_recovers_a_size_dependence_one_alpha_cannot(tmp_path):
    cal, held_out = nets(8, 11), nets(12, 12)
    t, measured = synthetic_lut(tmp_path, -0.5, 0.8, cal + held_out)
    per = [block_arrays(t, arch) for arch in cal]
    a, b = fit_size_model(*zip(*per), measured[:8])
    assert b > 0.3  # found that bigger blocks pay more of their cold penalty

    def errors(alphas_of):
        est = [sum(w + alphas_of(x) * (c - w)) for w, c, x in
               (block_arrays(t, arch) for arch in held_out)]  # fmt: skip
        return np.abs(np.array(est) / measured[8:] - 1)

    warm = np.array([sum(block_arrays(t, arch)[0]) for arch in cal])
    cold = np.array([sum(block_arrays(t, arch)[1]) for arch in cal])
    alpha = fit_alpha(warm, cold, measured[:8])
    size_err = errors(lambda x: size_alphas(x, a, b))
    assert np.median(size_err) < 0.02
    assert np.median(size_err) < np.median(errors(lambda x: alpha))


def test_fit_of_a_flat_truth_stays_flat(tmp_path):
    cal = nets(8, 13)
    t, measured = synthetic_lut(tmp_path, 0.4, 0.0, cal)
    a, b = fit_size_model(*zip(*(block_arrays(t, arch) for arch in cal)), measured)
    assert abs(b) < 0.3 and 1 / (1 + math.exp(-a)) == pytest.approx(0.6, abs=0.1)


def test_an_old_one_alpha_lut_means_what_it_meant(tmp_path):
    """A LUT written before the size model (context with "alpha" only) loads, prices every
    block with that alpha, and keeps doing so for blocks added later."""
    specs = list(dict.fromkeys(SPACE.block_specs()))[:3]
    path = tmp_path / "old.json"
    rows = {spec_key(s): {"spec": json.loads(spec_key(s)), "warm_median_us": 10.0,
                          "cold_median_us": 30.0, "median_us": 15.0} for s in specs[:2]}
    path.write_text(json.dumps({"schema": "donnav2-lut", "schema_version": 1,
                                "provenance": {**PROV, "context": {"alpha": 0.25, "nets": 4}},
                                "entries": rows}))  # fmt: skip
    t = LatencyTable.load(path)
    assert t.lookup(specs[:2]) == 30.0
    t.add(specs[2], {"warm_median_us": 10.0, "cold_median_us": 50.0})
    assert t.latency(specs[2]) == 20.0
    shown = t.summary()
    assert "context  alpha 0.25, calibrated on 4 whole nets" in shown
    assert "by block size" not in shown


def test_a_size_model_lut_prices_each_block_and_says_so(tmp_path):
    small, big = sorted(set(SPACE.block_specs()), key=working_set_bytes)[:: 770][:2]
    t = LatencyTable.create(tmp_path / "l.json", PROV)
    for s in (small, big):
        t.add(s, {"warm_median_us": 10.0, "cold_median_us": 30.0})
    t.set_context(0.5, {"model": SIZE_MODEL, "params": [0.0, 1.0], "nets": 4,
                        "mape_before": 0.05, "mape_after": 0.02})  # fmt: skip
    back = LatencyTable.load(tmp_path / "l.json")
    for s in (small, big):
        assert back.latency(s) == pytest.approx(10.0 + 20.0 * size_alpha(s, 0.0, 1.0))
    assert back.latency(small) < 20.0 < back.latency(big)
    shown = back.summary()
    assert "context  alpha 0.50, calibrated on 4 whole nets; whole-net mean abs error" in shown
    assert f"context  by block size ({SIZE_MODEL} a +0.00, b +1.00): alpha" in shown
    line = context_line(back)
    assert line.startswith("context model: alpha 0.50 from 4 whole nets; mean abs error 5.0%")
    assert f"by block size ({SIZE_MODEL} a +0.00, b +1.00)" in line


def test_one_alpha_stays_the_default_model():
    """bench/lut_fidelity.py did not show the size model better (bench/RESULTS.md)."""
    assert CONTEXT_MODEL == ONE_ALPHA


def test_alpha_may_exceed_one_up_to_its_bound():
    warm, cold = np.array([100.0, 200.0, 300.0]), np.array([120.0, 260.0, 330.0])
    # nets that pay 1.3x the measured cold penalty (small blocks whose window cold was warmish)
    assert fit_alpha(warm, cold, warm + 1.3 * (cold - warm)) == pytest.approx(1.3)
    assert fit_alpha(warm, cold, warm + 5.0 * (cold - warm)) == ALPHA_MAX
    assert fit_alpha(warm, cold, warm - 0.5 * (cold - warm)) == 0.0
