"""``donna experiment cost`` on a copy of the shared tiny finished run: the same search priced
by MACs and by the LUT, both fronts' picks converted and timed whole on the host for real; the
figures checked against the MACs formula, the LUT and the matching rule; a second call
measures nothing again; bad inputs give one-line errors."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import copy_run

from nas.cli.donna import main
from nas.core.specs import macs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cost_run(finished_run: Path, tmp_path_factory: pytest.TempPathFactory, cache_dir: Path):
    """A copy of the finished run with the cost experiment done once (2 picks a front)."""
    run = copy_run(finished_run, tmp_path_factory.mktemp("cost"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DONNA_CACHE_DIR", str(cache_dir))
        assert main(["experiment", "cost", str(run), "--picks", "2"]) == 0
        yield run


def _read(run: Path) -> dict[str, Any]:
    return json.loads((run / "experiments" / "cost" / "cost.json").read_text())


def test_figures_are_the_models_own(cost_run: Path) -> None:
    from nas.experiments.runs import FinishedRun

    data = _read(cost_run)
    opened = FinishedRun.open(cost_run, "cost")
    space, table = opened.space, opened.context.table()
    assert len(data["models"]) >= 3  # a pick of each front and the mothernet at least
    for m in data["models"]:
        assert m["measured_ms"] > 0
        if m["genome"] is None:
            continue
        arch = space.decode(m["genome"])
        assert m["mmacs"] == pytest.approx(sum(macs(b) for b in arch.blocks) / 1e6)
        assert m["lut_ms"] == pytest.approx(table.lookup(arch) / 1000.0)
    assert any("mothernet" in m["roles"] for m in data["models"])
    for cost in ("macs", "lut"):
        s = data["searches"][cost]
        assert len(s["picks"]) == min(2, len(s["front"]))
        # each front is non-dominated in (its own cost, surrogate): cost up, loss down
        own = [r["mmacs" if cost == "macs" else "lut_ms"] for r in s["front"]]
        loss = [r["surrogate"] for r in s["front"]]
        assert own == sorted(own)
        assert all(a >= b for a, b in itertools.pairwise(loss))
    tau = data["kendall"]
    assert tau["models"] == len(data["models"])
    for k in ("macs_vs_measured", "lut_vs_measured"):
        assert -1.0 <= tau[k]["tau"] <= 1.0 and 0.0 <= tau[k]["p"] <= 1.0


def test_pairs_follow_the_matching_rule(cost_run: Path) -> None:
    data = _read(cost_run)
    lut_front = data["searches"]["lut"]["front"]
    assert len(data["pairs"]) == len(data["searches"]["macs"]["picks"])
    for p in data["pairs"]:
        a, b = p["flops_chosen"], p["latency_chosen"]
        assert p["ratio"] > 0
        assert p["ratio"] == pytest.approx(a["measured_ms"] / b["measured_ms"])
        assert f"lut-front[{p['lut_index']}]" in b["roles"]
        ok = [r for r in lut_front if r["surrogate"] <= a["surrogate"]]
        if p["fallback"]:
            assert not ok
            assert b["surrogate"] == min(r["surrogate"] for r in lut_front)
        else:
            assert b["surrogate"] <= a["surrogate"]
            assert b["lut_ms"] == pytest.approx(min(r["lut_ms"] for r in ok))
    r = data["ratio"]
    ratios = [p["ratio"] for p in data["pairs"]]
    assert r["min"] == min(ratios) and r["max"] == max(ratios)
    assert r["min"] <= r["median"] <= r["max"]


def test_outputs_are_written_and_linked(cost_run: Path) -> None:
    out = cost_run / "experiments" / "cost"
    for name in ("fronts.png", "cost_vs_measured.png"):
        assert (out / name).stat().st_size > 1000
    summary = (out / "summary.md").read_text()
    assert summary.startswith("# ")
    assert "`donna experiment cost RUN_DIR --picks 2`" in summary
    assert "MMACs" in summary and "UNFILTERED" in summary
    assert "(fronts.png)" in summary and "(cost_vs_measured.png)" in summary
    assert "experiments/cost/summary.md" in (cost_run / "report.md").read_text()


def test_second_call_measures_nothing_again(
    cost_run: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("DONNA_CACHE_DIR", str(cache_dir))
    cache = cost_run / "experiments" / "cost" / "measured.json"
    before, before_mtime = cache.read_text(), cache.stat().st_mtime_ns
    first = _read(cost_run)
    capsys.readouterr()
    assert main(["experiment", "cost", str(cost_run), "--picks", "2"]) == 0
    captured = capsys.readouterr()
    assert "measuring" not in captured.err
    assert cache.read_text() == before and cache.stat().st_mtime_ns == before_mtime
    again = _read(cost_run)
    assert again["pairs"] == first["pairs"]  # same seed: the same searches and picks
    lines = captured.out.strip().splitlines()
    assert 3 <= len(lines) <= 6
    assert "median" in captured.out and "Kendall" in captured.out


def _one_line_error(capsys, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: ") and "Traceback" not in err, err
    for n in needles:
        assert n in err, (n, err)
    return err


def test_unfinished_run_is_refused(finished_run: Path, tmp_path: Path, capsys) -> None:
    run = copy_run(finished_run, tmp_path)
    state_file = run / "run.json"
    state = json.loads(state_file.read_text())
    del state["stages"]["search"]
    state_file.write_text(json.dumps(state))
    capsys.readouterr()
    assert main(["experiment", "cost", str(run)]) == 1
    _one_line_error(capsys, "'search'", "unfinished")
    assert not (run / "experiments" / "cost" / "cost.json").exists()


def test_another_device_is_refused(finished_run: Path, tmp_path: Path, capsys) -> None:
    run = copy_run(finished_run, tmp_path)
    capsys.readouterr()
    assert main(["experiment", "cost", str(run), "--device", "adb:phone1"]) == 1
    _one_line_error(capsys, "'host'", "'adb:phone1'", "--device host")
    assert not (run / "experiments" / "cost" / "cost.json").exists()


def test_folder_that_is_no_run_is_refused(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "not-a-run"
    folder.mkdir()
    capsys.readouterr()
    assert main(["experiment", "cost", str(folder)]) == 1
    _one_line_error(capsys, "not a donna run folder", str(folder))
