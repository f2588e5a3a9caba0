"""``latency-profile`` calibrates the LUTs it builds: the cache-context model (alpha) is fitted
once the LUT holds the whole space, shown by ``latency-profile show``, kept by later runs
(``donna run`` included) and dropped with the measurements it was fitted to (``--no-resume``).

Real measurements on this machine (``@pytest.mark.slow``): the quick-denoise space (50 blocks),
one round per block, conversions in the session cache (``cache_dir``)."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest

from latency.context import ALPHA_MAX, fit_alpha
from latency.host import REFERENCE_SPEC
from latency.profiler import reference_net, reference_net_id, whole_net_reference
from lut import LatencyTable
from lut.table import in_network_latency
from nas.cli.latency_profile import main as latency_main
from nas.core.spaces import get_space
from nas.core.specs import spec_key

SPACE = "quick-denoise"
PROV = {"device": {"id": "host-x", "cpu": "cpu"}, "runtime": "rt", "threads": 1,
        "converter": {"v": "1"}}  # fmt: skip


def run(argv: list[str]) -> tuple[int, str, str]:
    """``latency-profile ARGV`` in this process: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = latency_main(argv)
    return code, out.getvalue(), err.getvalue()


def profile_args(out: Path, cache_dir: Path, *extra: str) -> list[str]:
    return ["--space", SPACE, "--out", str(out), "--repeats", "1", "--invokes", "5",
            "--cache-dir", str(cache_dir), *extra]  # fmt: skip


def space_keys() -> set[str]:
    return {spec_key(s) for s in get_space(SPACE).block_specs()}


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path):
    """The README's command on the whole quick-denoise space, calibrated on 2 whole nets:
    (LUT path, stderr)."""
    lut = tmp_path_factory.mktemp("calibrated") / "host-quick-denoise.json"
    code, _, err = run(profile_args(lut, cache_dir, "--calibrate-nets", "2"))
    assert code == 0, err
    return lut, err


def copy_of(lut: Path, tmp_path: Path) -> Path:
    target = tmp_path / lut.name
    shutil.copy2(lut, target)
    return target


# ---- fast: options, the show line ---------------------------------------------------------


def test_calibrate_nets_must_be_a_count(tmp_path, capsys):
    assert latency_main(["--out", str(tmp_path / "l.json"), "--calibrate-nets", "-1"]) == 2
    assert "--calibrate-nets" in capsys.readouterr().err
    assert not (tmp_path / "l.json").exists()


def test_profile_job_refuses_a_negative_count_before_any_work():
    from latency.convert import ConvertConfig
    from latency.errors import SettingError
    from latency.host import MeasureConfig
    from latency.jobs import ProfileJob

    with pytest.raises(SettingError, match="calibrate_nets must be a whole number >= 0"):
        ProfileJob(space=get_space(SPACE), devices=("host",), measure=MeasureConfig(),
                   adb=None, convert=ConvertConfig(Path("unused")), calibrate_nets=-1)  # fmt: skip


def test_show_names_the_context_model(tmp_path):
    t = LatencyTable.create(tmp_path / "a.json", PROV)
    t.add(get_space(SPACE).block_specs()[0], {"warm_median_us": 10.0, "cold_median_us": 14.0})
    assert "context  not calibrated (alpha 0.5 default); rerun latency-profile" in t.summary()
    t.set_context(0.25, {"nets": 3, "mape_before": 0.081, "mape_after": 0.023})
    shown = LatencyTable.load(tmp_path / "a.json").summary()
    assert ("context  alpha 0.25, calibrated on 3 whole nets; whole-net mean abs error "
            "8.1% -> 2.3%") in shown  # fmt: skip


def test_whole_nets_use_the_reference_network_of_the_calibration_only(tmp_path):
    """A LUT without a stored reference-network baseline (not calibrated, or calibrated
    before it, or for another reference network) times whole nets against the reference
    block on the LUT's block baseline, as before."""
    t = LatencyTable.create(tmp_path / "a.json", PROV)
    assert whole_net_reference(t) == (REFERENCE_SPEC, None)
    assert whole_net_reference(None) == (REFERENCE_SPEC, None)
    t.provenance["reference"] = {"median_us": 250.0}
    t.set_context(0.5, {"nets": 3})  # an older calibration: no reference network
    assert whole_net_reference(t) == (REFERENCE_SPEC, 250.0)
    t.set_context(0.5, {"nets": 3, "net_reference": {"net": "another", "median_us": 9.0}})
    assert whole_net_reference(t) == (REFERENCE_SPEC, 250.0)
    t.set_context(0.5, {"nets": 3, "net_reference": {"net": reference_net_id(),
                                                     "median_us": 2300.0}})  # fmt: skip
    back = LatencyTable.load(tmp_path / "a.json")
    assert whole_net_reference(back) == (reference_net(), 2300.0)
    assert len(reference_net().blocks) == 17  # a fixed mid-sized net, not one of a LUT's space


# ---- slow: real profiling -----------------------------------------------------------------


@pytest.mark.slow
def test_latency_profile_calibrates_a_complete_lut(calibrated):
    lut, err = calibrated
    table = LatencyTable.load(lut)
    assert set(table.entries) == space_keys()
    ctx = table.provenance["context"]
    assert ctx["nets"] == 2 and 0.0 <= ctx["alpha"] <= ALPHA_MAX
    # what was fitted is kept: each calibration net's sums and its measured latency
    fitted = ctx["nets_us"]
    assert len(fitted["warm_sum"]) == len(fitted["cold_sum"]) == len(fitted["measured"]) == 2
    assert fit_alpha(**{k.removesuffix("_sum"): v for k, v in fitted.items()}) == ctx["alpha"]
    assert ctx["mape_before"] > 0 and ctx["mape_after"] > 0
    # the size model is fitted and kept alongside; one alpha (the default) prices the blocks
    assert len(ctx["size_params"]) == 2 and all(abs(v) < 10 for v in ctx["size_params"])
    assert ctx["mape_size"] > 0 and ctx["mape_one_alpha"] == ctx["mape_after"]
    assert "model" not in ctx and "params" not in ctx
    # the calibration nets were timed against the reference network, whose baseline is kept:
    # later whole-network timings of this LUT use it (latency.profiler.whole_net_reference)
    assert ctx["net_reference"]["net"] == reference_net_id()
    model, baseline = whole_net_reference(table)
    assert model == reference_net() and baseline == ctx["net_reference"]["median_us"] > 0
    print(f"\ncalibrated: alpha {ctx['alpha']:.3f}, mean abs error "
          f"{ctx['mape_before'] * 100:.2f}% -> {ctx['mape_after'] * 100:.2f}%")  # fmt: skip
    for row in table.entries.values():  # every look-up figure re-derived with the fitted alpha
        assert row["median_us"] == pytest.approx(in_network_latency(row, ctx["alpha"]))
    assert "fitting the context model on 2 whole nets" in err
    before, after = ctx["mape_before"] * 100, ctx["mape_after"] * 100
    assert (f"context model: alpha {ctx['alpha']:.2f} from 2 whole nets; mean abs error "
            f"{before:.1f}% -> {after:.1f}%") in err  # fmt: skip
    code, out, _ = run(["show", str(lut)])
    assert code == 0 and f"context  alpha {ctx['alpha']:.2f}, calibrated on 2 whole nets" in out


@pytest.mark.slow
def test_a_calibrated_lut_is_not_calibrated_again(calibrated, tmp_path, cache_dir, monkeypatch):
    """A rerun of latency-profile, and donna run's LUT stage, keep the LUT's context model."""
    lut = copy_of(calibrated[0], tmp_path)
    before = json.loads(lut.read_text())
    code, _, err = run(profile_args(lut, cache_dir, "--calibrate-nets", "3"))
    assert code == 0, err
    assert "50 already in the LUT, 0 measured now" in err
    assert "(calibrated before; kept)" in err and "fitting the context model" not in err
    assert json.loads(lut.read_text()) == before

    from nas.pipeline.config import RunConfig
    from nas.pipeline.stages import RunContext, stage_lut

    monkeypatch.setenv("DONNA_CACHE_DIR", str(cache_dir))
    lines: list[str] = []
    cfg = RunConfig(task="denoising", space=SPACE, lut=lut, out=tmp_path / "run")
    result = stage_lut(RunContext(cfg, echo=lines.append))
    assert "(calibrated before; kept)" in result["summary"]
    assert not any("fitting the context model" in line for line in lines)
    assert json.loads(lut.read_text())["provenance"]["context"] == before["provenance"]["context"]


@pytest.mark.slow
def test_no_resume_drops_the_context_and_0_nets_leaves_it_uncalibrated(
    calibrated, tmp_path, cache_dir
):
    """--no-resume measures again from scratch: the context fitted to the old entries goes
    with them (kept in the .bak). --calibrate-nets 0 leaves the new LUT uncalibrated; a later
    run on the complete LUT calibrates it."""
    lut = copy_of(calibrated[0], tmp_path)
    code, _, err = run(profile_args(lut, cache_dir, "--no-resume", "--calibrate-nets", "0"))
    assert code == 0, err
    assert "0 already in the LUT, 50 measured now" in err
    assert "context model: not calibrated (alpha 0.5 default); calibration skipped" in err
    table = LatencyTable.load(lut)
    assert set(table.entries) == space_keys() and "context" not in table.provenance
    for row in table.entries.values():
        assert row["median_us"] == pytest.approx(in_network_latency(row, 0.5))
    assert "context" in json.loads((tmp_path / f"{lut.name}.bak").read_text())["provenance"]
    code, out, _ = run(["show", str(lut)])
    assert code == 0
    assert "context  not calibrated (alpha 0.5 default); rerun latency-profile" in out

    code, _, err = run(profile_args(lut, cache_dir, "--calibrate-nets", "2"))
    assert code == 0, err
    assert "50 already in the LUT, 0 measured now" in err and "context model: alpha" in err
    ctx = LatencyTable.load(lut).provenance["context"]
    print(f"\nre-measured, calibrated again: alpha {ctx['alpha']:.3f}, mean abs error "
          f"{ctx['mape_before'] * 100:.2f}% -> {ctx['mape_after'] * 100:.2f}%")  # fmt: skip
    assert ctx["nets"] == 2


@pytest.mark.slow
def test_limit_skips_calibration_with_a_note(tmp_path, cache_dir):
    lut = tmp_path / "part.json"
    code, _, err = run(profile_args(lut, cache_dir, "--limit", "5", "--calibrate-nets", "2"))
    assert code == 0, err
    assert ("context model: not calibrated yet (alpha 0.5 default): the LUT holds 5 of the 50 "
            f"blocks of space {SPACE}; profile the rest (the same command without --limit)"
            ) in err  # fmt: skip
    assert "fitting the context model" not in err
    table = LatencyTable.load(lut)
    assert len(table) == 5 and "context" not in table.provenance
    code, out, _ = run(["show", str(lut)])
    assert code == 0 and "context  not calibrated" in out
