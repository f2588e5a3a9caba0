"""``donna experiment filter`` on a finished tiny run: the unfiltered and the filtered space
searched, the exact front enumerated, a small filter sweep, the picks measured whole on the
host and finetuned for real; run again from its caches; and the path where the unfiltered
space is too large to enumerate (``max_enumerate=1``)."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import pytest
from conftest import copy_run

from nas.cli.donna import main
from nas.core.spaces import SearchSpace
from nas.experiments.filter_ablation import run_filter_experiment
from nas.experiments.filter_plots import beyond_paper
from nas.filter import load_filtered

SWEEP = ["--thresholds", "0,0.5", "--loss-tolerances", "0.1"]
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def filter_run(finished_run: Path, tmp_path_factory: pytest.TempPathFactory, cache_dir: Path):
    """A copy of the finished run with the experiment made once through the CLI."""
    old = os.environ.get("DONNA_CACHE_DIR")
    os.environ["DONNA_CACHE_DIR"] = str(cache_dir)
    try:
        run = copy_run(finished_run, tmp_path_factory.mktemp("filter-exp"))
        assert main(["experiment", "filter", str(run), *SWEEP]) == 0
        yield run
    finally:
        if old is None:
            os.environ.pop("DONNA_CACHE_DIR", None)
        else:
            os.environ["DONNA_CACHE_DIR"] = old


def _spaces(run: Path) -> tuple[SearchSpace, SearchSpace]:
    """The run's unfiltered and filtered spaces, read from its own space.json."""
    data = load_filtered(run / "space.json")
    return SearchSpace.from_dict(data["original_space"]), SearchSpace.from_dict(data["space"])


def _dominated_by(point: list[float], front: list[list[float]]) -> bool:
    return any(a <= point[0] + 1e-12 and b <= point[1] + 1e-12 for a, b in front)


@pytest.mark.slow
def test_filter_experiment_outputs(filter_run: Path):
    out = filter_run / "experiments" / "filter"
    data = json.loads((out / "filter.json").read_text())
    full, filtered = _spaces(filter_run)
    n_full, n_filtered = math.prod(full.n_options()), math.prod(filtered.n_options())
    assert data["spaces"]["unfiltered"]["cardinality"] == n_full
    assert data["spaces"]["filtered"]["cardinality"] == n_filtered < n_full
    assert data["spaces"]["filtered"]["shrink"] == pytest.approx(n_full / n_filtered)

    ref = data["reference"]
    assert ref["kind"] == "exact" and ref["note"] is None
    assert ref["hv_ratio_self"] == pytest.approx(1.0)
    for label in ("unfiltered", "filtered"):
        s = data["searches"][label]
        assert 0 < s["hv_ratio"] <= 1 + 1e-9 and s["seconds"] > 0 and s["front"]
        # the exact front weakly dominates every point a search found
        for e in s["front"]:
            assert _dominated_by([e["surrogate"], e["latency_ms"]], ref["front"])
        assert (out / label / "pareto.json").is_file()
    # the run's own search, same seed and space, is found again
    assert data["searches"]["filtered"]["same_front_as_run"] is True

    rows = data["sweep"]
    own = (data["run_filter"]["threshold"], data["run_filter"]["loss_tolerance"])
    grid = {(0.0, 0.1), (0.5, 0.1), own}
    assert {(r["threshold"], r["loss_tolerance"]) for r in rows} == grid and len(rows) == len(grid)
    for r in rows:
        assert 1 <= r["cardinality"] <= n_full
        assert r["shrink"] == pytest.approx(n_full / r["cardinality"])
        assert 0 < r["hv_ratio"] <= 1 + 1e-9
        assert r["hv_lost"] == pytest.approx(1 - r["hv_ratio"])
        assert r["front_by"] == "enumeration" and r["front_size"] > 0
    mine = [r for r in rows if r["run_setting"]]
    assert len(mine) == 1 and mine[0]["cardinality"] == n_filtered
    # a lower threshold drops at least as much
    by_t = {r["threshold"]: r["cardinality"] for r in rows}
    assert by_t[0.0] <= by_t[0.5]
    assert "text" in data["beyond_paper"] and data["beyond_paper"]["goal"]
    # the filter keeps every slot's Pareto options: no setting shrinks past that limit
    limit = data["filter_limit"]
    assert limit["n_options"] == full.n_options()
    assert all(r["shrink"] <= limit["max_shrink"] * (1 + 1e-9) for r in rows)

    finals = json.loads((filter_run / "run.json").read_text())["settings"]["sizes"]["finals"]
    picks = data["picks"]
    assert {p["front"] for p in picks} == {"unfiltered", "filtered"}
    assert len(picks) <= 2 * finals
    for p in picks:
        assert p["measured_ms"] > 0 and p["lut_ms"] > 0
        assert p["metric_name"] and 0.0 <= p["metric"] <= 1.0

    for png in ("sweep.png", "fronts.png"):
        assert (out / png).read_bytes()[:8] == PNG
    summary = (out / "summary.md").read_text()
    assert summary.startswith("# ") and "donna experiment filter RUN_DIR" in summary
    assert "](sweep.png)" in summary and "](fronts.png)" in summary
    assert "experiments/filter/summary.md" in (filter_run / "report.md").read_text()


@pytest.mark.slow
def test_filter_experiment_again_reuses_caches(filter_run: Path, capsys):
    out = filter_run / "experiments" / "filter"
    measured = (out / "measured.json").read_bytes()
    results = {p: p.stat().st_mtime_ns for p in out.glob("finetune/*/result.json")}
    assert results
    t0 = time.perf_counter()
    assert main(["experiment", "filter", str(filter_run), *SWEEP]) == 0
    assert time.perf_counter() - t0 < 30
    assert (out / "measured.json").read_bytes() == measured
    assert {p: p.stat().st_mtime_ns for p in out.glob("finetune/*/result.json")} == results
    printed = capsys.readouterr()
    assert "beyond the paper" in printed.out
    assert "measuring" not in printed.err and "finetuning" not in printed.err


@pytest.mark.slow
def test_filter_experiment_not_enumerable(filter_run: Path, tmp_path: Path, monkeypatch, cache_dir):
    monkeypatch.setenv("DONNA_CACHE_DIR", str(cache_dir))
    run = copy_run(filter_run, tmp_path)  # with the caches of the first experiment
    said: list[str] = []
    exp = run_filter_experiment(
        run, thresholds=(0.5,), loss_tolerances=(0.1,), max_enumerate=1, echo=said.append
    )
    assert exp.reference["kind"] == "best known"
    assert "enumerated" in exp.reference["note"]
    assert "note:" in exp.summary() and any("note:" in s for s in said)
    data = json.loads((run / "experiments" / "filter" / "filter.json").read_text())
    assert data["reference"]["kind"] == "best known" and data["reference"]["note"]
    for label in ("unfiltered", "filtered"):
        assert 0 < data["searches"][label]["hv_ratio"] <= 1 + 1e-9
    for r in data["sweep"]:
        assert r["front_by"].startswith("search") and 0 < r["hv_ratio"] <= 1 + 1e-9
    # the best known front is the union's non-dominated part: every found point is covered
    for label in ("unfiltered", "filtered"):
        for e in data["searches"][label]["front"]:
            assert _dominated_by([e["surrogate"], e["latency_ms"]], data["reference"]["front"])
    assert "best known" in (run / "experiments" / "filter" / "summary.md").read_text()


def _row(threshold: float, shrink: float, lost: float) -> dict:
    return {"threshold": threshold, "loss_tolerance": 0.1, "shrink": shrink, "hv_lost": lost}


def test_beyond_paper_answers():
    rows = [_row(0.0, 40.0, 0.005), _row(0.2, 12.0, 0.0), _row(1.0, 2.0, 0.0)]
    got = beyond_paper(rows, 10.0, 0.01)
    assert got["found"] and got["setting"]["threshold"] == 0.0  # the largest shrink
    rows = [_row(0.0, 40.0, 0.05), _row(0.2, 12.0, 0.02), _row(1.0, 2.0, 0.0)]
    got = beyond_paper(rows, 10.0, 0.01)
    assert not got["found"] and got["setting"] is None
    assert got["largest_shrink_under_loss"]["threshold"] == 1.0
    assert got["least_loss_at_shrink"]["threshold"] == 0.2
    assert "2.0x" in got["text"] and "2.00%" in got["text"]
    limit = {"slot_pareto_options": [3, 4], "n_options": [6, 6], "max_shrink": 3.0}
    got = beyond_paper([_row(1.0, 2.0, 0.0)], 10.0, 0.01, limit=limit)
    assert not got["found"] and "no setting shrinks the space 10x" in got["text"]
    assert "3/6, 4/6" in got["text"] and "more than 3.0x" in got["text"]


@pytest.mark.slow
def test_pareto_thinning_rows(filter_run: Path):
    """Beyond the paper: each slot capped at K Pareto options, its size and HV lost measured."""
    data = json.loads((filter_run / "experiments" / "filter" / "filter.json").read_text())
    full, _ = _spaces(filter_run)
    n_full = math.prod(full.n_options())
    rows = data["thinning"]
    assert rows and [r["keep"] for r in rows] == sorted((r["keep"] for r in rows), reverse=True)
    for r in rows:
        assert all(n <= r["keep"] for n in r["n_options"])
        assert r["cardinality"] == math.prod(r["n_options"])
        assert r["shrink"] == pytest.approx(n_full / r["cardinality"])
        assert 0.0 <= r["hv_lost"] <= 1.0
    assert rows[-1]["hv_lost"] >= rows[0]["hv_lost"]  # 2 per slot loses at least what 12 does
    summary = (filter_run / "experiments" / "filter" / "summary.md").read_text()
    assert "Beyond the paper: thinning" in summary
