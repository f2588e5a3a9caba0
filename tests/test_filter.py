from __future__ import annotations

import json

import numpy as np
import pytest

from latency.estimator import LatencyEstimator
from lut import LatencyTable, LutMissError
from nas.bkd.library import BkdLibrary
from nas.core.errors import FilterError
from nas.core.spaces import get_space
from nas.core.specs import describe, macs
from nas.filter import (
    FilterConfig,
    filter_slot,
    filter_space,
    load_filtered_space,
    loss_levels,
    option_costs,
    pareto_indices,
    thin_space,
)
from nas.synthetic import synthetic_latency, synthetic_library, synthetic_table

QUICK = get_space("quick")
SHA = "ab" * 32
OPTS = QUICK.options[0]


def make_table(specs) -> LatencyTable:
    return synthetic_table(specs, "test")


def make_library(space, seed: int = 0, sha: str = SHA, skip: int = 0) -> BkdLibrary:
    return synthetic_library(space, seed, sha, skip)


def test_drops_an_expensive_dominated_option_and_keeps_cheap_ones():
    nmse = [0.100, 0.104, 0.106, 0.300]
    cost = [100.0, 110.0, 200.0, 50.0]
    rep, dropped = filter_slot(0, OPTS[:4], nmse, cost, FilterConfig(threshold=0.2))
    assert rep.levels == ((0, 1, 2), (3,))
    assert [d.option for d in dropped] == [OPTS[2]]
    assert rep.kept == (0, 1, 3)  # option 1 is dominated but within 1.2 x the cheapest: kept
    reason = dropped[0].reason
    assert "1.2 x 100" in reason and "200" in reason and OPTS[0].label() in reason


def test_never_drops_a_slot_pareto_option():
    nmse = [0.100, 0.095]  # one level; option 1 costs 2x but has the lowest loss
    cost = [100.0, 200.0]
    rep, dropped = filter_slot(0, OPTS[:2], nmse, cost, FilterConfig(threshold=0.2))
    assert dropped == [] and rep.protected == (1,) and rep.kept == (0, 1)


def brute_pareto(nmse, cost) -> set[int]:
    n = len(nmse)
    return {
        j
        for j in range(n)
        if not any(
            (nmse[k] <= nmse[j] and cost[k] <= cost[j]) and (nmse[k], cost[k]) != (nmse[j], cost[j])
            for k in range(n)
        )
    }


@pytest.mark.parametrize("seed", range(60))
def test_property_random_tables(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, len(OPTS) + 1))
    # rounding makes ties in loss and in cost, the edge cases of levels and dominance
    nmse = list(np.round(rng.uniform(0.05, 0.5, n), 2))
    cost = list(np.round(rng.uniform(10, 100, n), 0))
    config = FilterConfig(
        threshold=float(rng.uniform(0, 0.5)), loss_tolerance=float(rng.uniform(0, 0.5))
    )
    rep, dropped = filter_slot(3, OPTS[:n], nmse, cost, config)
    gone = {OPTS.index(d.option) for d in dropped}
    front = brute_pareto(nmse, cost)
    assert not gone & front
    assert set(rep.pareto) == front
    assert set(rep.kept) | gone == set(range(n)) and not set(rep.kept) & gone
    for level in rep.levels:
        lo = min(nmse[j] for j in level)
        assert all(nmse[j] <= lo * (1 + config.loss_tolerance) for j in level)
        cheapest = min(cost[j] for j in level)
        assert any(cost[j] == cheapest for j in level if j in rep.kept)
        for j in level:
            over = cost[j] > (1 + config.threshold) * cheapest
            assert (j in gone) == (over and j not in front)


def test_loss_levels_group_by_relative_tolerance():
    assert loss_levels([0.30, 0.10, 0.105, 0.12, 0.111], 0.1) == [[1, 2], [4, 3], [0]]
    assert loss_levels([0.2, 0.2], 0.0) == [[0, 1]]


def test_filter_space_with_lut_reports_sizes_and_reasons():
    table = make_table(QUICK.block_specs())
    rep = filter_space(QUICK, make_library(QUICK), table)
    assert rep.space.name == "quick-filtered" and rep.cost_unit == "us"
    assert rep.log10_before == pytest.approx(3 * np.log10(24))
    assert rep.log10_after == pytest.approx(sum(np.log10(len(s.kept)) for s in rep.slots))
    assert rep.log10_after < rep.log10_before and rep.dropped
    for d in rep.dropped:
        assert d.option not in rep.space.options[d.slot] and "dominated in its slot" in d.reason
    d = json.loads(json.dumps(rep.to_dict()))
    assert len(d["dropped"]) == len(rep.dropped) and d["n_options_before"] == [24, 24, 24]
    assert "10^4.14 ->" in rep.summary()


def test_costs_are_lut_latencies_at_the_mothernet_input_channels():
    table = make_table(QUICK.block_specs())
    rep = filter_space(QUICK, make_library(QUICK), table)
    chs = QUICK.reference_in_chs()
    assert chs == [16, 24, 40]
    o = QUICK.options[2][5]
    expected = sum(synthetic_latency(b) for b in QUICK.slot_blocks(2, o, 40))
    assert rep.slots[2].cost[5] == pytest.approx(expected)
    # an estimator gives the same costs as its table
    rep2 = filter_space(QUICK, make_library(QUICK), LatencyEstimator(table))
    assert rep2.slots == rep.slots and "estimator (lut mode" in rep2.cost_source


def test_flops_fallback_without_lut():
    rep = filter_space(QUICK, make_library(QUICK), None)
    assert rep.cost_unit == "MACs"
    o = QUICK.options[1][7]
    assert rep.slots[1].cost[7] == sum(macs(b) for b in QUICK.slot_blocks(1, o, 24))


def test_lut_miss_names_every_missing_block():
    specs = QUICK.block_specs()
    table = make_table(specs[:-10])
    with pytest.raises(LutMissError) as exc:
        filter_space(QUICK, make_library(QUICK), table)
    # the head is not an option's block: every missing *option* block is named at once
    needed = {b for slot in QUICK.option_blocks() for opt in slot for b in opt}
    missing = [s for s in specs[-10:] if s in needed]
    assert len(exc.value.missing) == len(missing)
    assert all(describe(s) in str(exc.value) for s in missing)


def test_mothernet_mismatch_and_file_round_trip(tmp_path):
    lib = make_library(QUICK)
    with pytest.raises(FilterError, match="mothernet"):
        filter_space(QUICK, lib, None, mothernet_sha256="cd" * 32)
    rep = filter_space(QUICK, lib, None, mothernet_sha256=SHA)
    path = rep.save(tmp_path / "filtered.json")
    assert load_filtered_space(path, lib) == rep.space
    other = make_library(QUICK, sha="cd" * 32)
    with pytest.raises(FilterError, match=r"run `donna filter` again with this library"):
        load_filtered_space(path, other)
    data = json.loads(path.read_text())
    assert data["mothernet_sha256"] == SHA and data["filter"]["log10_after"] == rep.log10_after


def test_library_missing_options_or_other_space():
    with pytest.raises(FilterError, match="lacks 3 option"):
        filter_space(QUICK, make_library(QUICK, skip=3), None)
    with pytest.raises(FilterError, match="does not fit"):
        filter_space(get_space("quick", resolution=64), make_library(QUICK), None)


def test_bad_files_and_config(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text('{"schema": "other"}')
    with pytest.raises(FilterError, match="not a filtered search space"):
        load_filtered_space(bad)
    with pytest.raises(FilterError, match="does not exist"):
        load_filtered_space(tmp_path / "none.json")
    with pytest.raises(FilterError, match="threshold"):
        FilterConfig(threshold=-0.1)


def test_thinning_keeps_k_pareto_options_spread_by_cost_with_both_ends():
    lib = make_library(QUICK, seed=3)
    table = make_table(QUICK.block_specs())
    losses, (costs, _, _) = lib.losses(QUICK), option_costs(QUICK, table)
    for keep in (2, 4, 8):
        thin = thin_space(QUICK, lib, table, keep)
        assert thin.name == f"quick-thin{keep}"
        for i, kept in enumerate(thin.options):
            front = pareto_indices(losses[i], costs[i])
            idx = [QUICK.options[i].index(o) for o in kept]
            assert set(idx) <= set(front) and len(idx) == min(keep, len(front))
            cheapest = min(front, key=lambda j: costs[i][j])
            best = min(front, key=lambda j: losses[i][j])
            assert cheapest in idx and best in idx
    whole = thin_space(QUICK, lib, table, 100)  # more than any front: every Pareto option
    assert whole.n_options() == [len(pareto_indices(n, c)) for n, c in zip(losses, costs)]
    with pytest.raises(FilterError, match="at least 2"):
        thin_space(QUICK, lib, table, 1)


def test_keep_pareto_thins_each_slot_and_says_why(tmp_path):
    lib = make_library(QUICK, seed=3)
    table = make_table(QUICK.block_specs())
    rep = filter_space(QUICK, lib, table, FilterConfig(keep_pareto=4))
    assert rep.space.n_options() == thin_space(QUICK, lib, table, 4).n_options()
    assert all(n <= 4 for n in rep.space.n_options())
    thinned = [d for d in rep.dropped if d.reason.startswith("Pareto thinning")]
    assert thinned and all("not among the 4 Pareto options kept" in d.reason for d in thinned)
    assert "4 Pareto options kept per slot" in rep.summary()
    path = rep.save(tmp_path / "space.json")
    assert load_filtered_space(path).n_options() == rep.space.n_options()
    with pytest.raises(FilterError, match="keep_pareto must be a whole number >= 2"):
        FilterConfig(keep_pareto=1)
