from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from latency.estimator import LatencyEstimator
from lut import LatencyTable, LutMissError
from nas.bkd.library import BkdLibrary
from nas.core.errors import SearchError
from nas.core.spaces import SearchSpace, StageDef, get_space, product_options
from nas.core.specs import describe
from nas.filter import filter_space
from nas.search.config import SearchConfig
from nas.search.objectives import latency_model
from nas.search.result import load_pareto, parse_pick, pick
from nas.search.run import exact_front, hypervolume_ratio, run_search
from nas.synthetic import synthetic_library, synthetic_table

QUICK = get_space("quick")
SMALL = SearchConfig(pop_size=30, generations=15, seed=0)


def make_table(specs) -> LatencyTable:
    return synthetic_table(specs, "test")


def make_library(space, seed: int = 0) -> BkdLibrary:
    return synthetic_library(space, seed, "ab" * 32)


def two_width_space() -> SearchSpace:
    """3 slots x 8 options with widths 0.5 and 1.0: latency is not additive (512 genomes)."""
    opts = product_options((3, 5), (3,), (0.0,), (1, 2), (0.5, 1.0), ("silu",))
    return SearchSpace(
        name="two-width",
        resolution=16,
        stem_chs=16,
        stem_stride=1,
        stages=(StageDef(24, 2), StageDef(40, 1), StageDef(64, 2)),
        options=(opts,) * 3,
        head_chs=128,
        num_classes=10,
    )


@pytest.fixture(scope="module")
def quick_table() -> LatencyTable:
    return make_table(QUICK.block_specs())


@pytest.fixture(scope="module")
def quick_library() -> BkdLibrary:
    return make_library(QUICK)


def test_front_entries_are_consistent_and_non_dominated(quick_table, quick_library):
    res = run_search(QUICK, quick_library, quick_table, SMALL)
    assert res.method == "nsga2" and res.front
    est = LatencyEstimator(quick_table)
    lat = [e.latency_ms for e in res.front]
    assert lat == sorted(lat)
    for e in res.front:
        assert e.surrogate == pytest.approx(quick_library.surrogate(e.genome))
        assert e.latency_ms == pytest.approx(est(QUICK.decode(e.genome)) / 1000)
        assert e.blocks == tuple(QUICK.decode(e.genome).to_list())
    pts = res.points()
    for a in pts:
        assert not any((b <= a).all() and (b < a).any() for b in pts)
    assert len(res.evaluated) > SMALL.pop_size


def test_same_seed_same_front(quick_table, quick_library):
    a = run_search(QUICK, quick_library, quick_table, SMALL)
    b = run_search(QUICK, quick_library, quick_table, SMALL)
    assert [e.to_dict() for e in a.front] == [e.to_dict() for e in b.front]
    assert np.array_equal(a.evaluated, b.evaluated)


def test_found_front_close_to_the_exact_front(quick_table, quick_library):
    res = run_search(QUICK, quick_library, quick_table, SearchConfig(pop_size=60, generations=30))
    exact = exact_front(QUICK, quick_library.losses(QUICK), latency_model(QUICK, quick_table))
    ratio = hypervolume_ratio(res.front, exact)
    assert 0.95 < ratio <= 1.0 + 1e-12
    assert hypervolume_ratio(exact, exact) == pytest.approx(1.0)


def test_budget_is_a_constraint(quick_table, quick_library):
    model = latency_model(QUICK, quick_table)
    fastest_us, _ = model.fastest()
    budget = fastest_us / 1000 * 1.5
    res = run_search(QUICK, quick_library, quick_table, SearchConfig(30, 15, 0, budget))
    assert res.front and all(e.latency_ms <= budget for e in res.front)
    exact = exact_front(QUICK, quick_library.losses(QUICK), model, budget_ms=budget)
    assert all(e.latency_ms <= budget for e in exact)
    assert res.fastest_ms == pytest.approx(fastest_us / 1000)


def test_budget_below_fastest_names_the_fastest(quick_table, quick_library):
    fastest_ms = latency_model(QUICK, quick_table).fastest()[0] / 1000
    with pytest.raises(SearchError, match="below the fastest") as exc:
        run_search(QUICK, quick_library, quick_table, SearchConfig(budget_ms=fastest_ms * 0.9))
    assert f"{fastest_ms:.4f} ms" in str(exc.value)


def test_latency_model_exact_with_two_widths():
    space = two_width_space()
    table = make_table(space.block_specs())
    model = latency_model(space, table)
    assert not model.additive and [len(c) for c in model.in_chs] == [1, 2, 2]
    genomes = np.array(list(itertools.product(*(range(n) for n in space.n_options()))))
    est = LatencyEstimator(table)
    truth = est.estimate_many([space.decode(g) for g in genomes])
    assert model.evaluate(genomes) == pytest.approx(truth)
    fastest, genome = model.fastest()
    assert fastest == pytest.approx(truth.min())
    assert est(space.decode(genome)) == pytest.approx(fastest)


def test_quick_latency_is_additive(quick_table):
    assert latency_model(QUICK, quick_table).additive


def test_lut_miss_names_every_missing_block(quick_table, quick_library):
    specs = QUICK.block_specs()
    gone = [specs[0], specs[5], specs[-1]]  # stem, a slot block, the head
    table = make_table([s for s in specs if s not in gone])
    with pytest.raises(LutMissError) as exc:
        run_search(QUICK, quick_library, LatencyEstimator(table), SMALL)
    assert len(exc.value.missing) == 3
    assert all(describe(s) in str(exc.value) for s in gone)


def test_predict_mode_fills_missing_blocks(quick_library):
    specs = QUICK.block_specs()
    table = make_table([*specs[::2], specs[-1]])
    est = LatencyEstimator(table, mode="predict", seed=0)
    res = run_search(QUICK, quick_library, est, SearchConfig(20, 5, 0))
    assert res.front and res.provenance["estimator_mode"] == "predict"


def test_filtered_space_keeps_the_exact_front(quick_table, quick_library):
    rep = filter_space(QUICK, quick_library, quick_table)
    assert rep.log10_after < rep.log10_before
    full = exact_front(QUICK, quick_library.losses(QUICK), latency_model(QUICK, quick_table))
    sub = exact_front(
        rep.space, quick_library.losses(rep.space), latency_model(rep.space, quick_table)
    )
    assert [(e.surrogate, e.latency_ms) for e in sub] == [(e.surrogate, e.latency_ms) for e in full]
    archs = [[json.dumps(e.blocks, sort_keys=True) for e in f] for f in (sub, full)]
    assert sorted(archs[0]) == sorted(archs[1])


def test_tiny_space_is_enumerated(quick_table):
    space = QUICK.with_options([QUICK.options[0][:2], QUICK.options[1][:1], QUICK.options[2][:3]])
    lib = make_library(QUICK)
    calls = []
    res = run_search(space, lib, quick_table, SMALL, progress=lambda g, n: calls.append((g, n)))
    exact = exact_front(space, lib.losses(space), latency_model(space, quick_table))
    assert res.method == "enumeration" and len(res.evaluated) == 6
    assert [e.to_dict() for e in res.front] == [e.to_dict() for e in exact]
    assert calls == [(SMALL.generations, SMALL.generations)]


def test_progress_is_called_every_generation(quick_table, quick_library):
    calls = []
    run_search(
        QUICK,
        quick_library,
        quick_table,
        SearchConfig(20, 4, 1),
        progress=lambda g, n: calls.append(g),
    )
    assert calls == [1, 2, 3, 4]


def test_pareto_round_trip_png_and_pick(tmp_path, quick_table, quick_library):
    res = run_search(
        QUICK, quick_library, quick_table, SearchConfig(20, 5, 3, 5.0), mothernet_point=(0.0, 4.0)
    )
    path, png = res.save(tmp_path / "run")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    back = load_pareto(path)
    assert [e.to_dict() for e in back.front] == [e.to_dict() for e in res.front]
    assert back.config == res.config and back.space == QUICK and back.mothernet == (0.0, 4.0)
    assert np.array_equal(back.evaluated, res.evaluated) and back.method == res.method
    data = json.loads(path.read_text())
    assert data["front"][0]["index"] == 0 and data["provenance"]["mothernet_sha256"] == "ab" * 32

    space, genome, entry = pick(f"{path}:1")
    assert space == QUICK and genome == list(res.front[1].genome) and entry == res.front[1]
    n = len(res.front)
    with pytest.raises(SearchError, match=rf"valid indices 0\.\.{n - 1}"):
        pick(f"{path}:{n}")
    with pytest.raises(SearchError, match="PATH:INDEX"):
        pick(str(path))


def test_parse_pick_is_the_path_index_parser(tmp_path):
    assert parse_pick("runs/a:b/pareto.json:3") == (Path("runs/a:b/pareto.json"), 3)
    assert parse_pick(Path("p.json:-1")) == (Path("p.json"), -1)
    for bad in ("p.json", "p.json:", ":2", "p.json:x"):
        with pytest.raises(SearchError, match="PATH:INDEX"):
            parse_pick(bad)
    with pytest.raises(SearchError, match="does not exist"):
        pick(f"{tmp_path / 'none.json'}:0")


def test_bad_pareto_files(tmp_path):
    bad = tmp_path / "p.json"
    bad.write_text('{"schema": "donnav2-lut"}')
    with pytest.raises(SearchError, match="not a Pareto front"):
        load_pareto(bad)
    with pytest.raises(SearchError, match="does not exist"):
        load_pareto(tmp_path / "none.json")


def test_library_must_cover_the_space(quick_table):
    lib = make_library(QUICK)
    lib._entries.popitem()
    with pytest.raises(SearchError, match="lacks 1 option"):
        run_search(QUICK, lib, quick_table, SMALL)
    with pytest.raises(SearchError, match="pop_size"):
        SearchConfig(pop_size=1)
