"""The command lines: errors a user sees, instant --help, LUT utilities."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lut import LatencyTable
from nas.cli.donna import main as donna_main
from nas.cli.latency_profile import main as latency_main
from nas.core.spaces import get_space

PROV = {
    "device": {"id": "host-x", "cpu": "cpu"},
    "runtime": "rt",
    "threads": 1,
    "converter": {"v": "1"},
}


def test_help_is_instant_and_imports_no_heavy_library():
    code = (
        "import sys; from nas.cli.latency_profile import main\n"
        "from nas.cli.donna import main as m2\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'tensorflow', 'onnx2tf', 'sklearn') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "--device" in out.stdout and "HEAVY []" in out.stdout, out.stderr


def test_unknown_device(capsys):
    assert latency_main(["--device", "R58M00000", "--out", "/tmp/never.json"]) == 1
    err = capsys.readouterr().err
    assert "unknown device 'R58M00000'" in err and "--device host" in err


def test_unknown_space(capsys, tmp_path):
    assert latency_main(["--space", "huge", "--out", str(tmp_path / "l.json")]) == 1
    assert "unknown search space 'huge'" in capsys.readouterr().err


def test_unwritable_output(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert latency_main(["--out", str(blocker / "lut.json"), "--limit", "1"]) == 1
    assert "cannot write LUT" in capsys.readouterr().err


def test_corrupt_lut_is_refused_and_kept(capsys, tmp_path):
    bad = tmp_path / "lut.json"
    bad.write_text('{"schema": "donnav2-lut", "sche')
    assert latency_main(["--out", str(bad), "--limit", "1"]) == 1
    assert "corrupt or truncated" in capsys.readouterr().err
    assert bad.read_text() == '{"schema": "donnav2-lut", "sche'
    assert latency_main(["show", str(bad)]) == 1


def test_lut_of_other_threads_is_refused(capsys, tmp_path):
    from latency.host import HostDevice, MeasureConfig
    from latency.profiler import provenance_for

    path = tmp_path / "lut.json"
    LatencyTable.create(path, provenance_for(HostDevice(MeasureConfig(threads=1))))
    assert latency_main(["--out", str(path), "--threads", "2", "--limit", "1"]) == 1
    assert "threads: LUT has 1, asked for 2" in capsys.readouterr().err


def test_bad_numbers_are_usage_errors(capsys, tmp_path):
    assert latency_main(["--repeats", "0", "--out", str(tmp_path / "x.json")]) == 2
    assert ">= 1" in capsys.readouterr().err


def test_list_devices(capsys):
    assert latency_main(["--list-devices"]) == 0
    assert capsys.readouterr().out.startswith("host")


def test_show_export_compare(capsys, tmp_path):
    specs = get_space("quick").block_specs()
    a = LatencyTable.create(tmp_path / "a.json", PROV)
    b = LatencyTable.create(tmp_path / "b.json", PROV)
    for i, s in enumerate(specs[:3]):
        a.add(s, {"warm_median_us": 10.0 + i, "cold_median_us": 12.0 + i})
        b.add(s, {"warm_median_us": 30.0 + 3 * i, "cold_median_us": 36.0 + 3 * i})
    assert latency_main(["show", str(tmp_path / "a.json")]) == 0
    assert "3 entries" in capsys.readouterr().out
    assert latency_main(["export-csv", str(tmp_path / "a.json"), str(tmp_path / "a.csv")]) == 0
    assert len((tmp_path / "a.csv").read_text().splitlines()) == 4
    assert (
        latency_main(
            [
                "compare",
                str(tmp_path / "a.json"),
                str(tmp_path / "b.json"),
                "--csv",
                str(tmp_path / "cmp.csv"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "3 common blocks" in out and "median 3.000" in out
    assert (tmp_path / "cmp.csv").read_text().count("\n") == 4


def test_donna_space(capsys):
    assert donna_main(["space", "quick"]) == 0
    out = capsys.readouterr().out
    assert "3 slots" in out and "distinct blocks for the LUT: 74" in out
    assert donna_main(["space", "nope"]) == 1


@pytest.mark.slow
def test_profile_then_resume(tmp_path, cache_dir, monkeypatch, capsys):
    monkeypatch.setenv("DONNA_CACHE_DIR", str(cache_dir))
    out = tmp_path / "host-quick.json"
    args = ["--space", "quick", "--out", str(out), "--repeats", "2", "--invokes", "5"]
    assert latency_main([*args, "--limit", "3"]) == 0
    first = json.loads(out.read_text())
    assert len(first["entries"]) == 3
    assert first["provenance"]["device"]["id"].startswith("host-")
    assert first["provenance"]["reference"]["median_us"] > 0
    for e in first["entries"].values():
        assert e["warm_median_us"] > 0 and e["median_us"] > 0 and e["max_abs_diff"] < 1e-4
    assert latency_main([*args, "--limit", "5"]) == 0
    second = json.loads(out.read_text())
    assert len(second["entries"]) == 5
    for k, e in first["entries"].items():  # resumed: old measurements untouched
        assert second["entries"][k] == e
    assert "3 already in the LUT, 2 measured now" in capsys.readouterr().err


@pytest.mark.slow
def test_resume_measures_bad_entries_again(tmp_path, cache_dir, monkeypatch, capsys):
    monkeypatch.setenv("DONNA_CACHE_DIR", str(cache_dir))
    out = tmp_path / "lut.json"
    args = ["--space", "quick", "--out", str(out), "--repeats", "2", "--invokes", "5"]
    assert latency_main([*args, "--limit", "2"]) == 0
    data = json.loads(out.read_text())
    bad_key, good_key = sorted(data["entries"])
    good = data["entries"][good_key]
    data["entries"][bad_key]["median_us"] = True  # not 1 us
    out.write_text(json.dumps(data))
    capsys.readouterr()
    assert latency_main(["show", str(out)]) == 1  # a reader refuses it, naming it
    assert "median_us (it is true" in capsys.readouterr().err
    assert latency_main([*args, "--limit", "2"]) == 0  # a resume measures it again
    err = capsys.readouterr().err
    assert "1 already in the LUT, 1 measured now" in err and "dropped 1 bad LUT entry" in err
    after = json.loads(out.read_text())["entries"]
    assert after[good_key] == good
    assert isinstance(after[bad_key]["median_us"], float) and after[bad_key]["median_us"] > 0
    assert json.loads((tmp_path / "lut.json.bak").read_text())["entries"][bad_key][
        "median_us"] is True  # fmt: skip


@pytest.mark.slow
def test_cache_dir_is_the_cache_root(tmp_path, cache_dir, monkeypatch, capsys):
    """--cache-dir X means what DONNA_CACHE_DIR=X means: converted models in X/tflite."""
    args = ["--space", "quick", "--repeats", "2", "--invokes", "5", "--limit", "2"]
    monkeypatch.setenv("DONNA_CACHE_DIR", str(cache_dir))
    assert latency_main([*args, "--out", str(tmp_path / "a.json")]) == 0
    elsewhere = tmp_path / "elsewhere"
    monkeypatch.setenv("DONNA_CACHE_DIR", str(elsewhere))
    capsys.readouterr()
    assert latency_main([*args, "--out", str(tmp_path / "b.json"), "--cache-dir",
                         str(cache_dir)]) == 0  # fmt: skip
    assert "conversions all cached" in capsys.readouterr().err
    assert not elsewhere.exists()
    assert any((cache_dir / "tflite").rglob("*.tflite"))
