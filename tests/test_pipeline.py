"""``donna run`` end to end on the host, with tiny sizes: every stage for real (training,
TFLite conversion and timing, BKD, filter, NSGA-II, whole-model measurement, finetuning)."""

from __future__ import annotations

import json

import pytest

from nas.cli import main
from nas.pipeline import PipelineError, RunConfig, parse_overrides

pytestmark = pytest.mark.slow

TINY = [
    "--set", "train_limit=300",
    "--set", "val_limit=100",
    "--set", "mothernet_epochs=0.5",
    "--set", "bkd_epochs=0.5",
    "--set", "bkd_train_samples=128",
    "--set", "bkd_val_samples=64",
    "--set", "finetune_epochs=0.2",
    "--set", "finals=2",
    "--set", "hil_models=2",
    "--set", "pop_size=16",
    "--set", "generations=4",
]


@pytest.fixture
def cached(monkeypatch, cache_dir):
    monkeypatch.setenv("DONNA_CACHE_DIR", str(cache_dir))


def test_run_denoising_end_to_end_and_resume(tmp_path, cached, capsys):
    out, lut = tmp_path / "run", tmp_path / "lut.json"
    args = ["run", "--task", "denoising", "--out", str(out), "--lut", str(lut), *TINY]
    assert main(args) == 0
    state = json.loads((out / "run.json").read_text())
    assert all(state["stages"][s]["done"] for s in state["stages"])
    assert len(state["stages"]) == 8
    pareto = json.loads((out / "search" / "pareto.json").read_text())
    assert pareto["front"], "the search found no architecture"
    lats = [e["latency_ms"] for e in pareto["front"]]
    losses = [e["surrogate"] for e in pareto["front"]]
    assert lats == sorted(lats) and losses == sorted(losses, reverse=True)
    hil = json.loads((out / "hil.json").read_text())["rows"]
    assert {r["model"] for r in hil} >= {"mothernet"}
    assert all(r["measured_ms"] > 0 and r["lut_ms"] > 0 for r in hil)
    finals = json.loads((out / "final" / "results.json").read_text())
    assert len(finals) == 2 and all(f["metric_name"] == "psnr_db" for f in finals)
    assert all((out / "final" / str(f["index"]) / "model.pt").exists() for f in finals)
    report = (out / "report.md").read_text()
    assert "LUT vs measured" in report and (out / "hil.png").exists()
    assert (out / "search" / "pareto.png").exists()

    # a rerun skips every stage; other settings in the same folder are refused
    capsys.readouterr()
    assert main(args) == 0
    assert capsys.readouterr().err.count("done earlier, skipped") == 8
    assert main([*args, "--seed", "1"]) == 1
    assert "other settings (seed differ)" in capsys.readouterr().err


def test_bad_run_settings(tmp_path, capsys):
    assert main(["run", "--out", str(tmp_path), "--set", "bogus=1"]) == 1
    assert "expected KEY=VALUE with KEY one of" in capsys.readouterr().err
    with pytest.raises(PipelineError, match="not a number"):
        parse_overrides(["finals=three"])
    with pytest.raises(PipelineError, match="is for classification, not denoising"):
        RunConfig(task="denoising", space="quick").get_space()
