"""``donna`` end to end on the host, with tiny sizes: every stage for real (training, TFLite
conversion and timing, BKD, filter, NSGA-II, whole-model measurement, finetuning), then the
single-step commands on the run's outputs and their bad-input errors."""

from __future__ import annotations

import json
import os

import pytest

from nas.cli.donna import main
from nas.core.errors import PipelineError, SpaceError
from nas.pipeline.config import RunConfig, parse_overrides

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
]  # fmt: skip


@pytest.fixture(scope="module")
def denoise_run(tmp_path_factory, cache_dir):
    """One tiny denoising run shared by the tests of this module."""
    old = os.environ.get("DONNA_CACHE_DIR")
    os.environ["DONNA_CACHE_DIR"] = str(cache_dir)
    root = tmp_path_factory.mktemp("run")
    out, lut = root / "run", root / "lut.json"
    args = ["run", "--task", "denoising", "--out", str(out), "--lut", str(lut), "--workers", "1"]
    args += TINY
    try:
        assert main(args) == 0
        yield out, lut, args
    finally:
        if old is None:
            os.environ.pop("DONNA_CACHE_DIR", None)
        else:
            os.environ["DONNA_CACHE_DIR"] = old


def test_run_writes_every_stage(denoise_run):
    out, _, _ = denoise_run
    state = json.loads((out / "run.json").read_text())
    assert len(state["stages"]) == 8
    assert all(st["done"] and st["seconds"] >= 0 for st in state["stages"].values())
    pareto = json.loads((out / "search" / "pareto.json").read_text())
    assert pareto["front"], "the search found no architecture"
    lats = [e["latency_ms"] for e in pareto["front"]]
    losses = [e["surrogate"] for e in pareto["front"]]
    assert lats == sorted(lats) and losses == sorted(losses, reverse=True)
    hil = json.loads((out / "hil.json").read_text())["rows"]
    assert "mothernet" in {r["model"] for r in hil}
    assert all(r["measured_ms"] > 0 and r["lut_ms"] > 0 for r in hil)
    finals = json.loads((out / "final" / "results.json").read_text())
    assert len(finals) == 2 and all(f["metric_name"] == "psnr_db" for f in finals)
    assert all(f["metric"] > 15.0 for f in finals)  # denoised output, not noise
    assert all((out / "final" / str(f["index"]) / "model.pt").exists() for f in finals)
    report = (out / "report.md").read_text()
    assert "LUT vs measured" in report and "PSNR" in report
    assert (out / "hil.png").exists() and (out / "search" / "pareto.png").exists()
    assert (out / "bkd_filter.png").exists() and (out / "tradeoff.png").exists()


def test_rerun_skips_finished_stages_and_refuses_other_settings(denoise_run, capsys):
    _, _, args = denoise_run
    capsys.readouterr()
    assert main(args) == 0
    assert capsys.readouterr().err.count("done earlier, skipped") == 8
    assert main([*args, "--seed", "1"]) == 1
    assert "other settings (seed differ)" in capsys.readouterr().err


def test_single_step_commands_on_the_run(denoise_run, tmp_path, capsys):
    out, lut, _ = denoise_run
    bkd, space = out / "bkd.json", out / "space.json"
    # filter again, with FLOPs (no LUT)
    assert main(["filter", "--bkd", str(bkd), "--out", str(tmp_path / "space.json")]) == 0
    assert json.loads((tmp_path / "space.json").read_text())["filter"]["cost_unit"] == "MACs"
    # search with a budget, then pick out of range
    res = tmp_path / "search"
    argv = ["search", "--space", str(space), "--bkd", str(bkd), "--lut", str(lut), "--out",
            str(res), "--pop", "12", "--generations", "3"]  # fmt: skip
    assert main(argv) == 0
    front = json.loads((res / "pareto.json").read_text())["front"]
    capsys.readouterr()
    assert main([*argv, "--budget-ms", "0.0001"]) == 1
    assert "fastest" in capsys.readouterr().err
    n = len(front)
    assert main(["finetune", "--pick", f"{res / 'pareto.json'}:{n}", "--out", str(tmp_path)]) == 1
    assert "out of range" in capsys.readouterr().err
    # a library from another mothernet is refused by the filter
    other = tmp_path / "other.pt"
    other.write_bytes((out / "mothernet.pt").read_bytes() + b"x")
    assert main(["filter", "--bkd", str(bkd), "--mothernet", str(other), "--out",
                 str(tmp_path / "s2.json")]) == 1  # fmt: skip
    assert "was trained from mothernet" in capsys.readouterr().err


def _lut_without_stem_and_heads(lut, tmp_path):
    """A copy of the run's LUT without the stem and head entries (every architecture of the
    space needs them)."""
    from nas.core.specs import spec_key

    space = RunConfig(task="denoising").get_space()
    data = json.loads(lut.read_text())
    gone = [spec_key(space.stem_spec()), *(k for k in data["entries"] if '"image_head"' in k)]
    for k in gone:
        del data["entries"][k]
    trimmed = tmp_path / "trimmed.json"
    trimmed.write_text(json.dumps(data))
    return trimmed, gone


def test_search_measure_mode_measures_missing_blocks_on_the_host(denoise_run, tmp_path):
    out, lut, _ = denoise_run
    trimmed, gone = _lut_without_stem_and_heads(lut, tmp_path)
    argv = ["search", "--space", str(out / "space.json"), "--bkd", str(out / "bkd.json"),
            "--lut", str(trimmed), "--out", str(tmp_path / "s"), "--pop", "12",
            "--generations", "2"]  # fmt: skip
    assert main([*argv, "--mode", "lut"]) == 1  # the missing blocks are an error ...
    assert main([*argv, "--mode", "measure", "--device", "host"]) == 0  # ... or measured
    entries = json.loads(trimmed.read_text())["entries"]
    assert all(k in entries for k in gone)
    pareto = json.loads((tmp_path / "s" / "pareto.json").read_text())
    assert pareto["front"] and pareto["provenance"]["estimator_mode"] == "measure"


def test_search_predict_mode_predicts_missing_blocks(denoise_run, tmp_path):
    out, lut, _ = denoise_run
    trimmed, _ = _lut_without_stem_and_heads(lut, tmp_path)
    before = trimmed.read_text()
    argv = ["search", "--space", str(out / "space.json"), "--bkd", str(out / "bkd.json"),
            "--lut", str(trimmed), "--out", str(tmp_path / "s"), "--pop", "12",
            "--generations", "2", "--mode", "predict"]  # fmt: skip
    assert main(argv) == 0
    assert trimmed.read_text() == before  # predictions are not measurements: the LUT stays
    pareto = json.loads((tmp_path / "s" / "pareto.json").read_text())
    assert pareto["front"] and pareto["provenance"]["estimator_mode"] == "predict"
    assert all(e["latency_ms"] > 0 for e in pareto["front"])


def test_validate_surrogate_on_the_run(denoise_run, tmp_path, capsys):
    out, _, _ = denoise_run
    pareto = out / "search" / "pareto.json"
    if len(json.loads(pareto.read_text())["front"]) < 2:
        pytest.skip("the tiny run's front has fewer than 2 architectures")
    report = tmp_path / "val.json"
    argv = ["validate-surrogate", "--pareto", str(pareto), "--k", "4", "--epochs", "0.1",
            "--repeats", "1", "--out", str(report)]  # fmt: skip
    assert main(argv) == 0
    data = json.loads(report.read_text())
    assert len(data["archs"]) == 4 and -1.0 <= data["tau_surrogate"] <= 1.0
    assert [a["origin"] for a in data["archs"]] == ["front"] * 2 + ["random"] * 2
    lo, hi = data["tau_surrogate_ci"]
    assert lo <= data["tau_surrogate"] <= hi
    assert data["compute_ratio"] > 1.0 and len(data["repeat_gaps"]) == 1
    assert report.with_suffix(".png").exists()
    assert "Kendall τ" in capsys.readouterr().out
    finetuned = sorted((pareto.parent / "validation").iterdir())
    assert main(argv) == 0  # cached: nothing is finetuned again
    assert sorted((pareto.parent / "validation").iterdir()) == finetuned
    assert "finetuning" not in capsys.readouterr().err


def test_train_mothernet_and_bkd_commands(tmp_path, cache_dir, monkeypatch, capsys):
    monkeypatch.setenv("DONNA_CACHE_DIR", str(cache_dir))
    ckpt = tmp_path / "m.pt"
    argv = ["train-mothernet", "--task", "classification", "--epochs", "0.2", "--train-limit",
            "200", "--val-limit", "50", "--out", str(ckpt)]  # fmt: skip
    assert main(argv) == 0 and ckpt.exists()
    assert "top1 = " in capsys.readouterr().out
    lib = tmp_path / "bkd.json"
    argv = ["bkd", "--mothernet", str(ckpt), "--out", str(lib), "--limit", "2",
            "--train-samples", "64", "--val-samples", "32"]  # fmt: skip
    assert main(argv) == 0
    assert "2 options; 70 still missing" in capsys.readouterr().out


def test_bad_inputs(tmp_path, capsys):
    assert main(["run", "--out", str(tmp_path), "--set", "bogus=1"]) == 1
    assert "expected KEY=VALUE with KEY one of" in capsys.readouterr().err
    with pytest.raises(PipelineError, match="not a number"):
        parse_overrides(["finals=three"])
    with pytest.raises(SpaceError, match="is for classification, not denoising"):
        RunConfig(task="denoising", space="quick").get_space()
    assert main(["run", "--task", "segmentation"]) == 2
    assert main(["filter", "--bkd", "x.json", "--out", "y.json", "--keep-pareto", "1"]) == 2
    assert main(["train-mothernet", "--data", f"cifar10:{tmp_path / 'nope'}", "--out",
                 str(tmp_path / "m.pt")]) == 1  # fmt: skip
    assert "cifar" in capsys.readouterr().err.lower()
    assert main(["bkd", "--mothernet", str(tmp_path / "none.pt"), "--out", "x.json"]) == 1
    assert "does not exist" in capsys.readouterr().err
