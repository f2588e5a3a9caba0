"""Bad inputs a user can give the two command lines: each gets one clear line (or the fix), and
nothing is written or lost. Fast: every check here comes before any conversion or training."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import pytest

from lut import LatencyTable
from nas.cli.donna import main as donna_main
from nas.cli.latency_profile import main as latency_main
from nas.core.errors import PipelineError
from nas.core.files import OutputPathError, check_writable
from nas.core.spaces import get_space
from nas.core.specs import describe, spec_from_key
from nas.pipeline.config import Preset, RunConfig, preset_for
from nas.pipeline.state import RUN_FILE, RunState, setting_differences

PROV = {
    "device": {"id": "host-x", "cpu": "cpu"},
    "runtime": "rt",
    "threads": 1,
    "converter": {"v": "1"},
}
SPECS = get_space("quick").block_specs()


def one_line_error(capsys: pytest.CaptureFixture[str], *needles: str) -> str:
    """The command's stderr, checked to be one ``error:`` line holding every needle."""
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: ") and "Traceback" not in err, err
    for n in needles:
        assert n in err, (n, err)
    return err


def tree(root: Path) -> dict[str, bytes | None]:
    """Every file and folder under ``root`` (files with their content)."""
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }


def _refuses_new_files(folder: Path) -> bool:
    try:
        fd, probe = tempfile.mkstemp(dir=folder)
    except OSError:
        return True
    os.close(fd)
    os.unlink(probe)
    return False


@pytest.fixture(params=["under-a-file", "read-only-folder"])
def unwritable(request, tmp_path):
    """A folder path that cannot be written, and the words its error names: under a file
    (NotADirectoryError), or in a folder that refuses new files (PermissionError; as root, who
    may write a mode-500 folder, /sys, which refuses even root)."""
    if request.param == "under-a-file":
        blocker = tmp_path / "a-file"
        blocker.write_text("keep me")
        return blocker / "sub", "is a file, not a folder"
    ro = tmp_path / "read-only"
    ro.mkdir()
    ro.chmod(0o500)
    request.addfinalizer(lambda: ro.chmod(0o700))
    if _refuses_new_files(ro):
        return ro / "sub", "takes no new files"
    if _refuses_new_files(Path("/sys")):
        return Path("/sys/donna-test-never"), "takes no new files"
    pytest.skip("no folder here refuses new files (root, and /sys is writable)")


def _lut(path: Path, n: int = 3, scale: float = 1.0) -> Path:
    t = LatencyTable.create(path, PROV)
    for i, s in enumerate(SPECS[:n]):
        t.add(s, {"warm_median_us": scale * (10.0 + i), "cold_median_us": scale * (12.0 + i)})
    return path


def _inputs(tmp_path: Path) -> dict[str, Path]:
    """Input files the commands are given: a real LUT, and stand-ins for the others (never
    read: the output is refused first)."""
    files = {"lut": _lut(tmp_path / "in" / "lut.json"), "lut2": _lut(tmp_path / "in" / "b.json")}
    for name in ("bkd.json", "space.json", "mothernet.pt", "pareto.json"):
        files[name] = tmp_path / "in" / name
        files[name].write_text("{}")
    return files


# command -> (argv given the inputs and the output path, does the command write a folder)
COMMANDS = {
    "latency-profile export-csv": (lambda f, o: ["export-csv", str(f["lut"]), str(o)], False),
    "latency-profile compare --csv": (
        lambda f, o: ["compare", str(f["lut"]), str(f["lut2"]), "--csv", str(o)], False),
    "donna filter": (lambda f, o: ["filter", "--bkd", str(f["bkd.json"]), "--out", str(o)], False),
    "donna search": (
        lambda f, o: ["search", "--space", str(f["space.json"]), "--bkd", str(f["bkd.json"]),
                      "--lut", str(f["lut"]), "--out", str(o)], True),
    "donna train-mothernet": (
        lambda f, o: ["train-mothernet", "--epochs", "0.01", "--train-limit", "8", "--val-limit",
                      "4", "--out", str(o)], False),
    "donna bkd": (
        lambda f, o: ["bkd", "--mothernet", str(f["mothernet.pt"]), "--out", str(o)], False),
    "donna finetune": (
        lambda f, o: ["finetune", "--pick", f"{f['pareto.json']}:0", "--out", str(o)], True),
    "donna run --out": (
        lambda f, o: ["run", "--out", str(o), "--lut", str(f["lut"].parent / "new.json")], True),
    "donna run --lut": (
        lambda f, o: ["run", "--out", str(f["lut"].parent / "run"), "--lut", str(o)], False),
    "donna validate-surrogate --out": (
        lambda f, o: ["validate-surrogate", "--pareto", str(f["pareto.json"]), "--out", str(o)],
        False),
}  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS)
def test_unwritable_output_is_refused_before_any_work(command, unwritable, tmp_path, capsys):
    folder, reason = unwritable
    argv, is_folder = COMMANDS[command]
    out = folder if is_folder else folder / "out.json"
    files = _inputs(tmp_path)
    before = tree(tmp_path)
    main = latency_main if command.startswith("latency-profile") else donna_main
    capsys.readouterr()
    assert main(argv(files, out)) == 1
    one_line_error(capsys, "cannot write", str(out), reason, "choose another")
    assert tree(tmp_path) == before  # nothing written, nothing lost


@pytest.mark.parametrize("command", ["export-csv", "compare"])
def test_csv_into_a_missing_folder_creates_it(command, tmp_path, capsys):
    a, b = _lut(tmp_path / "a.json"), _lut(tmp_path / "b.json", scale=2.0)
    out = tmp_path / "new" / "deeper" / "x.csv"
    argv = ["export-csv", str(a), str(out)] if command == "export-csv" else [
        "compare", str(a), str(b), "--csv", str(out)]  # fmt: skip
    assert latency_main(argv) == 0
    assert len(out.read_text().splitlines()) == 4


def test_csv_onto_a_folder_is_refused(tmp_path, capsys):
    a = _lut(tmp_path / "a.json")
    assert latency_main(["export-csv", str(a), str(tmp_path)]) == 2  # click: "is a directory"
    with pytest.raises(OutputPathError, match=r"CSV file .*: it is a folder, not a file"):
        LatencyTable.load(a).export_csv(tmp_path)


def test_check_writable_leaves_nothing_and_accepts_missing_folders(tmp_path):
    assert check_writable(tmp_path / "a" / "b" / "c.json", "x") == tmp_path / "a" / "b" / "c.json"
    assert check_writable(tmp_path / "new", "x", folder=True) == tmp_path / "new"
    assert list(tmp_path.iterdir()) == []  # neither created nor a probe left behind
    (tmp_path / "f").write_text("")
    with pytest.raises(OutputPathError, match="it is a file, not a folder"):
        check_writable(tmp_path / "f", "run folder", folder=True)


# ---- latency-profile --model with a malformed architecture --------------------------------


def _arch_list() -> list:
    return get_space("quick").decode([0, 5, 23]).to_list()


@pytest.mark.parametrize(
    "content, needle",
    [
        ({"a": 1}, "an architecture is a list of block specs"),
        ([1, 2], "block 0: a block spec is an object"),
        ("hello", 'got "hello"'),
        ("in_chs", 'field in_chs of a mbconv spec must be a whole number, got "sixteen"'),
        ("kernel", "field kernel of a mbconv spec must be a whole number, got true"),
        ({"blocks": 5}, "an architecture is a list of block specs"),
        ({"stem": 1, "slots": [], "head": 2}, "a block spec is an object"),
        ([], "needs at least a stem and a head"),
    ],
)
def test_malformed_architecture_json(content, needle, tmp_path, capsys):
    if content in ("in_chs", "kernel"):
        arch = _arch_list()
        arch[1][content] = "sixteen" if content == "in_chs" else True
        content = arch
    model = tmp_path / "arch.json"
    model.write_text(json.dumps(content))
    lut = tmp_path / "lut.json"
    assert latency_main(["--model", str(model), "--out", str(lut)]) == 1
    one_line_error(capsys, f"--model {model}", needle)
    assert not lut.exists()


# ---- donna run --set: every size checked before anything is written --------------------------


@pytest.mark.parametrize(
    "setting, needle",
    [
        ("pop_size=0", "pop_size must be a whole number >= 2"),
        ("pop_size=1", "pop_size must be a whole number >= 2"),
        ("generations=0", "generations must be a whole number >= 1"),
        ("finals=0", "finals must be a whole number >= 1"),
        ("hil_models=-1", "hil_models must be a whole number >= 0"),
        ("train_limit=0", "train_limit must be a whole number >= 2"),
        ("val_limit=-3", "val_limit must be a whole number >= 1"),
        ("bkd_train_samples=1", "bkd_train_samples must be a whole number >= 2"),
        ("bkd_val_samples=0", "bkd_val_samples must be a whole number >= 2"),
        ("mothernet_epochs=0", "mothernet_epochs must be a number of epochs > 0"),
        ("bkd_epochs=-1", "bkd_epochs must be a number of epochs > 0"),
        ("finetune_epochs=0", "finetune_epochs must be a number of epochs > 0"),
        ("finetune_epochs=nan", "finetune_epochs must be a number of epochs > 0"),
    ],
)
def test_run_sizes_are_checked_before_anything_is_written(setting, needle, tmp_path, capsys):
    out = tmp_path / "run"
    lut = tmp_path / "lut.json"
    assert donna_main(["run", "--out", str(out), "--lut", str(lut), "--set", setting]) == 1
    one_line_error(capsys, needle, f"--set {setting.split('=')[0]}=")
    assert list(tmp_path.iterdir()) == []


def test_run_budget_is_checked_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "run"
    assert donna_main(["run", "--out", str(out), "--budget-ms", "-1"]) == 1
    one_line_error(capsys, "budget_ms must be a positive number, got -1")
    assert list(tmp_path.iterdir()) == []


def test_presets_and_their_stage_settings_are_valid():
    for name in ("quick", "full"):
        for task in ("classification", "denoising", "super_resolution"):
            cfg = RunConfig(task=task, preset=name)
            assert isinstance(cfg.sizes, Preset) and cfg.sizes == preset_for(name, task)
            bkd, search = cfg.stage_configs()
            assert search.pop_size == cfg.sizes.pop_size and bkd.epochs == cfg.sizes.bkd_epochs
    with pytest.raises(PipelineError, match="pop_size"):
        RunConfig(overrides=(("pop_size", 0),))
    with pytest.raises(PipelineError, match="finals must be a whole number"):
        RunConfig(overrides=(("finals", 2.5),))
    with pytest.raises(PipelineError, match=r"pop_size must be a whole number >= 2 .*, got none"):
        RunConfig(overrides=(("pop_size", None),))
    with pytest.raises(PipelineError, match="epochs > 0"):
        RunConfig(overrides=(("mothernet_epochs", math.inf),))


def test_other_settings_refusal_names_each_key_and_both_values(tmp_path, capsys):
    out, lut = tmp_path / "run", tmp_path / "lut.json"
    RunState.open(out, RunConfig(out=out, lut=lut).result_settings(), restart=False)
    before = (out / RUN_FILE).read_text()
    argv = ["run", "--out", str(out), "--lut", str(lut)]
    assert donna_main([*argv, "--set", "pop_size=32", "--seed", "3"]) == 1
    one_line_error(
        capsys,
        "other settings (seed, sizes.pop_size differ)",
        f"seed: 0 in {out / RUN_FILE}, 3 now",
        f"sizes.pop_size: 100 in {out / RUN_FILE}, 32 now",
        "--restart",
    )
    assert (out / RUN_FILE).read_text() == before


def test_setting_differences():
    old = {"seed": 0, "data": "builtin", "sizes": {"pop_size": 100, "finals": 3}}
    new = {"seed": 0, "data": None, "sizes": {"pop_size": 16, "finals": 3}, "extra": 1}
    assert setting_differences(old, new) == [
        ("data", '"builtin"', "null"),
        ("extra", "null", "1"),
        ("sizes.pop_size", "100", "16"),
    ]


# ---- --limit and --workers -------------------------------------------------------------------


@pytest.mark.parametrize(
    "option, value",
    [("--limit", "-1"), ("--limit", "0"), ("--workers", "0"), ("--workers", "-1")],
)
def test_latency_profile_counts_must_be_positive(option, value, tmp_path, capsys):
    out = tmp_path / "lut.json"
    assert latency_main(["--out", str(out), option, value]) == 2
    err = capsys.readouterr().err
    assert f"Invalid value for '{option}': {value} is not in the range x>=1" in err
    assert not out.exists()


@pytest.mark.parametrize("command", ["bkd", "run"])
def test_donna_workers_must_be_positive(command, tmp_path, capsys):
    argv = ["run", "--out", str(tmp_path / "run")] if command == "run" else [
        "bkd", "--mothernet", str(tmp_path / "m.pt"), "--out", str(tmp_path / "b.json"),
    ]  # fmt: skip
    for value in ("0", "-1"):
        assert donna_main([*argv, "--workers", value]) == 2
        assert "Invalid value for '--workers'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kw", [{"limit": -1}, {"limit": 0}, {"workers": 0}, {"workers": -2}])
def test_profile_specs_refuses_bad_counts(kw, tmp_path):
    from latency.errors import SettingError
    from latency.host import HostDevice, MeasureConfig
    from latency.profiler import profile_specs

    table = LatencyTable.create(tmp_path / "l.json", PROV)
    with pytest.raises(SettingError, match=f"{next(iter(kw))} must be a whole number >= 1"):
        profile_specs(SPECS, HostDevice(MeasureConfig()), table, None, **kw)  # type: ignore[arg-type]
    assert len(LatencyTable.load(tmp_path / "l.json")) == 0


# ---- bad LUT entries ---------------------------------------------------------------------------


def _lut_with_entry(path: Path, **fields) -> Path:
    _lut(path, n=3)
    data = json.loads(path.read_text())
    key = next(iter(sorted(data["entries"])))
    data["entries"][key].update(fields)
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    "fields, shown",
    [
        ({"median_us": True}, "no valid median_us (it is true"),
        ({"median_us": 0}, "no valid median_us (it is 0;"),
        ({"median_us": "fast"}, 'no valid median_us (it is "fast"'),
        ({"warm_median_us": -5.0}, "no valid warm_median_us (it is -5.0"),
    ],
)
def test_bad_lut_entry_is_named_readably_with_its_value(fields, shown, tmp_path, capsys):
    path = _lut_with_entry(tmp_path / "lut.json", **fields)
    content = path.read_text()
    key = sorted(json.loads(content)["entries"])[0]
    label = describe(spec_from_key(key))
    assert latency_main(["show", str(path)]) == 1
    one_line_error(capsys, f"entry {label} has {shown}", "drops and measures again")
    assert path.read_text() == content
