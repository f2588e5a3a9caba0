"""Opening a run folder for an experiment: the settings read back from run.json, and the
refusals (no run, unfinished, another device, corrupt) with one line each through the CLI."""

from __future__ import annotations

import json

import pytest

from nas.cli.donna import main
from nas.experiments.runs import ExperimentError, FinishedRun
from nas.pipeline.config import RunConfig, parse_overrides
from nas.pipeline.stages import STAGES


@pytest.mark.parametrize(
    "config",
    [
        RunConfig(task="classification"),
        RunConfig(task="denoising", seed=3, budget_ms=2.5, overrides=parse_overrides(["finals=1"])),
        RunConfig(task="classification", space="default", resolution=64, preset="full"),
        RunConfig(task="classification", data="fashion-mnist"),
    ],
)
def test_settings_read_back_give_the_same_run(config, tmp_path):
    settings = config.result_settings()
    again = RunConfig.from_settings(json.loads(json.dumps(settings)), tmp_path)
    assert again.result_settings() == settings
    assert again.get_space() == config.get_space()


def _run_folder(tmp_path, done=tuple(STAGES), device="host"):
    settings = RunConfig(task="classification", device=device).result_settings()
    stages = {s: {"done": True, "seconds": 1.0} for s in done}
    (tmp_path / "run.json").write_text(json.dumps({"settings": settings, "stages": stages}))
    return tmp_path


def test_refusals_name_the_problem(tmp_path):
    with pytest.raises(ExperimentError, match="not a donna run folder"):
        FinishedRun.open(tmp_path, "filter")
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(ExperimentError, match="corrupt"):
        FinishedRun.open(tmp_path, "filter")
    _run_folder(tmp_path, done=("mothernet", "lut", "bkd"))
    with pytest.raises(ExperimentError, match="stage 'filter' has not run"):
        FinishedRun.open(tmp_path, "filter")
    _run_folder(tmp_path, device="host")
    with pytest.raises(ExperimentError, match="measured on device 'host', not 'R58M12ABCDE'"):
        FinishedRun.open(tmp_path, "filter", device="R58M12ABCDE")
    run = FinishedRun.open(tmp_path, "filter", device="host")
    assert run.out == tmp_path / "experiments" / "filter"
    assert run.config.device == "host" and run.space.name == "quick"


@pytest.mark.parametrize("command", ["filter", "cost"])
def test_cli_refusals_are_one_line(command, tmp_path, capsys):
    assert main(["experiment", command, str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a donna run folder" in err
    _run_folder(tmp_path, done=("mothernet", "lut", "bkd", "filter"))
    assert main(["experiment", command, str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "stage 'search' has not run" in err
    _run_folder(tmp_path)
    assert main(["experiment", command, str(tmp_path), "--device", "emulator-5554"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pass --device host" in err
