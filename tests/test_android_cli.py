"""latency-profile with phones: device selection, several phones in parallel, the binary's
error, whole-model (hardware-in-the-loop) measurement and the estimator's measure mode."""

from __future__ import annotations

import pytest
from adb_emulator.device import EmulatedDevice
from adb_emulator.fixtures import connect_device
from adb_emulator.standin import STANDIN_BINARY, profile_args, standin_host_dirs

from lut import LatencyTable
from nas.cli.latency_profile import main

pytestmark = pytest.mark.adb


def test_missing_binary_says_how_to_get_it(phone, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("DONNA_CACHE_DIR", str(tmp_path / "cache"))
    code = main(["--device", "--space", "quick", "--out", str(tmp_path / "l.json")])
    err = capsys.readouterr().err
    assert code == 1 and "android_aarch64_benchmark_model does not exist" in err
    assert "curl -L -o" in err and "storage.googleapis.com" in err and "--benchmark-binary" in err


def test_two_phones_in_parallel_one_lut_each(phone, adb_server, cache_dir, tmp_path, capsys):
    other = EmulatedDevice(tmp_path / "phone2", host_dirs=standin_host_dirs()).start()
    try:
        connect_device(adb_server, other)
        assert main(["--list-devices"]) == 0
        listed = capsys.readouterr().out
        assert phone.serial in listed and other.serial in listed
        code = main(["--device", "--space", "quick", "--out", str(tmp_path / "x.json")])
        err = capsys.readouterr().err
        assert code == 1 and "2 phones are attached" in err and other.serial in err
        args = profile_args(phone, tmp_path / "s10-{device}.json", cache_dir, 2)
        args += ["--device", other.serial]
        assert main(args) == 0, capsys.readouterr().err
        outs = capsys.readouterr().out.split()
        assert len(outs) == 2
        for serial in (phone.serial, other.serial):
            lut = LatencyTable.load(tmp_path / f"s10-{serial.replace(':', '_')}.json")
            assert len(lut) == 2 and lut.provenance["device"]["serial"] == serial
            assert lut.provenance["device"]["model"] == "SM-G973F"
            assert str(lut.path) in outs
    finally:
        adb_server.run("disconnect", other.serial, timeout=10)
        other.stop()


def test_estimator_measure_mode_and_whole_models(phone, cache_dir, convert_config, tmp_path,
                                                  capsys) -> None:
    from latency.android.config import AdbConfig
    from latency.android.device import AndroidDevice
    from latency.android.measure import PhoneBenchmark
    from latency.convert import Converter
    from latency.estimator import LatencyEstimator
    from latency.host import MeasureConfig
    from latency.profiler import open_table
    from nas.core.spaces import get_space

    out = tmp_path / "s10.json"
    space = get_space("quick")
    arch = space.decode([0, 0, 0])
    measure = MeasureConfig(repeats=2, invokes=3)
    adb = AdbConfig(io_timeout_s=5, run_timeout_s=20, cooldown_s=0, min_secs=0,
                    binary=STANDIN_BINARY)
    with PhoneBenchmark(AndroidDevice(phone.serial, adb), measure) as dev:
        table = open_table(out, dev)
        est = LatencyEstimator(table, "measure", device=dev, convert_config=convert_config)
        total = est(arch)  # every block is measured on the phone and added to the LUT
    assert total > 0 and len(LatencyTable.load(out)) == len(set(arch.blocks))

    tflite = Converter(convert_config).convert(arch.blocks[1]).path  # a plain .tflite file
    args = profile_args(phone, out, cache_dir, 1)
    code = main([*args, "--model", "0,0,0", "--model", str(tflite)])
    res = capsys.readouterr()
    assert code == 0, res.err
    lines = res.out.strip().splitlines()
    assert lines[0].startswith("0,0,0\tmeasured ") and "LUT/measured" in lines[0]
    assert lines[1].startswith(f"{tflite}\tmeasured ") and "LUT" not in lines[1]
    ratio = float(lines[0].split("LUT/measured ")[1].split()[0])
    assert 0.2 < ratio < 5  # the sum of blocks is in the range of the whole network
