"""AndroidDevice (adb I/O) and PhoneBenchmark (the phone as a latency device) against the
emulated Galaxy S10: real adb server, real adbutils, our device scripts under the device's
shell, the stand-in benchmark_model (tests/adb_emulator/standin)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from adb_emulator.standin import STANDIN_BINARY

from latency.android.binary import SCRIPT, BenchmarkBinaryError, check_abi, elf_abi
from latency.android.config import AdbConfig
from latency.android.device import AndroidDevice, select_serial
from latency.android.errors import DeviceSelectionError
from latency.android.measure import PhoneBenchmark
from latency.android.phones import GALAXY_S10_EXYNOS
from latency.android.run_report import parse_run_report
from latency.host import MeasureConfig

adb = pytest.mark.adb

FAST = MeasureConfig(warmup=1, repeats=3, invokes=3, max_extra_rounds=0)


def adb_config(**kw) -> AdbConfig:
    base = dict(io_timeout_s=10, run_timeout_s=20, cooldown_s=0, min_secs=0,
                binary=STANDIN_BINARY)
    return AdbConfig(**{**base, **kw})


def phone_benchmark(serial: str, **kw) -> PhoneBenchmark:
    return PhoneBenchmark(AndroidDevice(serial, adb_config(**kw)), FAST)


def tiny_models(convert_config, n: int) -> list[tuple[object, Path]]:
    from latency.convert import convert_many
    from nas.core.spaces import get_space

    specs = get_space("quick").block_specs()[:n]
    done, failed = convert_many(specs, convert_config, 1)
    assert not failed
    return [(s, done[s].path) for s in specs]


@adb
def test_fingerprint_profile_and_serial_selection(phone) -> None:
    assert select_serial(None) == phone.serial  # the one attached phone
    with pytest.raises(DeviceSelectionError, match="no phone 'R58X' is attached"):
        select_serial("R58X")
    with phone_benchmark(phone.serial) as dev:
        fp = dev.fingerprint()
        assert fp["model"] == "SM-G973F" and fp["profile"] == GALAXY_S10_EXYNOS.name
        assert fp["big_cores"] == [6, 7] and fp["taskset_mask"] == "c0"
        assert fp["cpu_max_freq_khz"]["7"] == 2730000 and fp["cpu_governors"]["0"] == "schedutil"
        assert set(fp["watched_zones"]) == {"BIG", "MID", "LITTLE"}
        assert fp["abilist"][0] == "arm64-v8a" and fp["id"].startswith("android-")
        assert dev.fingerprint()["id"] == fp["id"]  # stable
        res = dev.phone.shell(["sh", "-c", 'echo "$1"; exit 3', "sh", "a b'c"])
        assert (res.exit_code, res.stdout) == (3, "a b'c\n")


@adb
def test_models_pushed_once_per_content_and_results_cleaned(phone, convert_config, tmp_path):
    ((_, model),) = tiny_models(convert_config, 1)
    with AndroidDevice(phone.serial, adb_config()) as dev:
        remote = dev.push_model(model)
        assert remote.startswith("/data/local/tmp/donnav2/models/")
        host = phone.host_path(remote)
        assert host.read_bytes() == model.read_bytes()
        mtime = host.stat().st_mtime_ns
        copy = tmp_path / "same content.tflite"
        copy.write_bytes(model.read_bytes())
        assert dev.push_model(copy) == remote and host.stat().st_mtime_ns == mtime
        results = phone.host_path(f"/data/local/tmp/donnav2/results/{dev.session}")
        assert results.is_dir()
    assert not results.exists()  # close() removed this session's results
    with AndroidDevice(phone.serial, adb_config()) as dev2:  # a new session: no re-push
        assert dev2.push_model(model) == remote and host.stat().st_mtime_ns == mtime


@adb
def test_benchmark_runner_gate_pinning_and_report(phone, convert_config) -> None:
    ((_, model),) = tiny_models(convert_config, 1)
    big = phone.host_path("/sys/class/thermal/thermal_zone0/temp")  # BIG
    big.write_text("45000\n")  # above the 40 °C gate: the runner must wait
    threading.Timer(1.5, lambda: big.write_text("39000\n")).start()
    with phone_benchmark(phone.serial) as dev:
        remote = dev.phone.push_model(model)
        t0 = time.monotonic()
        reports = dev.run_benchmark([remote], runs=2, cooldown=False)
        assert time.monotonic() - t0 >= 1.0
        (rep,) = reports
        assert rep.model == remote and rep.gate_ok and rep.gate_waited_s >= 1
        assert [r.exit_code for r in rep.runs] == [0, 0]
        assert rep.freqs_before[6].hw_max_khz == 2730000 and set(rep.freqs_after) == {6, 7}
        assert rep.temps_after_c["BIG"] == 39.0
        assert "--num_threads=1" not in rep.runs[0].output  # flags are parsed, not echoed
        assert "Num threads: [1]" in rep.runs[0].output


@adb
def test_measure_gives_lut_entries(phone, convert_config) -> None:
    models = tiny_models(convert_config, 2)
    from latency.convert import Converter
    from latency.host import REFERENCE_SPEC

    ref = Converter(convert_config).convert(REFERENCE_SPEC).path
    done = []
    with phone_benchmark(phone.serial) as dev:
        res = dev.measure(models, ref, None, lambda k, m: done.append(k))
    assert done == [k for k, _ in models]
    for _, m in res.items():
        e = m.to_entry()
        assert e["warm_median_us"] > 0 and e["rounds"] == 3 and e["throttled"] is False
        assert e["warm_n"] == 3 and json.dumps(e)


@adb
def test_device_factory_gives_the_phone_and_cleans_its_session(phone) -> None:
    from latency.devices import get_device, open_device
    from latency.errors import UnknownDeviceError

    with open_device("adb", FAST, adb_config()) as dev:  # the one attached phone
        assert isinstance(dev, PhoneBenchmark) and dev.name == phone.serial
        assert dev.config is FAST and dev.adb.binary == STANDIN_BINARY
        results = phone.host_path(dev.phone.new_result_file()).parent
        assert results.is_dir()
    assert not results.exists()  # closed at the end of the block: session results removed
    with pytest.raises(UnknownDeviceError, match="unknown device 'R58X'"):
        get_device("R58X", FAST, adb_config())


def test_recorded_report_parses() -> None:
    text = (Path(__file__).parent / "data" / "run_benchmark" / "report_s10.txt").read_text()
    (rep,), done = parse_run_report(text)
    assert done and rep.gate_ok and len(rep.runs) == 2
    assert all(r.exit_code == 0 for r in rep.runs)


def test_elf_abi_check() -> None:
    def elf(machine: int, cls: int) -> bytes:
        head = b"\x7fELF" + bytes([cls, 1, 1]) + bytes(11)
        return head + machine.to_bytes(2, "little") + bytes(44)

    assert elf_abi(elf(183, 2)) == "arm64-v8a" and elf_abi(elf(62, 2)) == "x86_64"
    assert elf_abi(b"#!/system/bin/sh\n") == SCRIPT and elf_abi(b"MZ\x90") is None
    check_abi("arm64-v8a", ["arm64-v8a", "armeabi-v7a"], "bm")
    check_abi(SCRIPT, ["arm64-v8a"], "bm")
    with pytest.raises(BenchmarkBinaryError, match="built for x86_64, but the phone runs arm64"):
        check_abi("x86_64", ["arm64-v8a"], "bm")


def test_device_scripts_pass_shellcheck() -> None:
    import shutil
    import subprocess

    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (Debian: apt-get install shellcheck)")
    scripts = sorted((Path(__file__).parents[1] / "device_scripts").glob("*.sh"))
    assert {s.name for s in scripts} >= {"device_info.sh", "run_benchmark.sh"}
    res = subprocess.run([shellcheck, "-s", "sh", *map(str, scripts)], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stdout


def test_throttle_reasons_and_cut_report() -> None:
    from latency.android.run_report import throttle_reasons

    text = (Path(__file__).parent / "data" / "run_benchmark" / "report_s10.txt").read_text()
    cut = text[: text.index("@@donna run 2 end")]
    (rep,), done = parse_run_report(cut)
    assert not done and not rep.complete and [r.exit_code for r in rep.runs] == [0, -1]
    (full,), _ = parse_run_report(text)
    assert throttle_reasons(full, 48.0) == []
    hot = parse_run_report(text.replace("temp after BIG 38000", "temp after BIG 51000"))[0][0]
    assert throttle_reasons(hot, 48.0) == ["BIG at 51.0 °C after the runs (limit 48 °C)"]
    with pytest.raises(Exception, match="does not start with '@@donna report 1'"):
        parse_run_report("Segmentation fault\n")
