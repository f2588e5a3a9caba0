"""Faults on the phone side, each survived with nothing lost: the profile stops (or skips)
within the configured timeout with a clear message, the LUT keeps every finished entry, and
running the same command again resumes. Real adb server and adbutils, emulated phone."""

from __future__ import annotations

import time

import pytest
from adb_emulator.standin import block_model_names, profile_args, set_benchmark_fault

from lut import LatencyTable
from nas.cli.latency_profile import main

pytestmark = pytest.mark.adb


def run(args: list[str], capsys) -> tuple[int, str, float]:
    t0 = time.monotonic()
    code = main(args)
    return code, capsys.readouterr().err, time.monotonic() - t0


def resumes(args: list[str], capsys, kept: int, total: int) -> LatencyTable:
    code, err, _ = run(args, capsys)
    assert code == 0, err
    assert f"{kept} already in the LUT, {total - kept} measured now" in err
    return LatencyTable.load(args[args.index("--out") + 1])


def test_connection_dropped_mid_benchmark(phone, adb_server, cache_dir, tmp_path, capsys):
    third = block_model_names(cache_dir, 3)[2]
    set_benchmark_fault(phone, f"sleep {third} 8")  # block 3 runs long: the cable goes then
    phone.faults.drop_on_command = third
    phone.faults.drop_delay = 1.0
    out = tmp_path / "lut.json"
    args = profile_args(phone, out, cache_dir, 3)
    code, err, took = run(args, capsys)
    assert code == 1 and "lost the connection to phone" in err and "run the same command" in err
    assert took < 60 and phone.drops == 1
    kept = LatencyTable.load(out)
    assert len(kept) == 2
    set_benchmark_fault(phone, None)
    phone.revive()
    assert adb_server.run("connect", phone.serial).returncode == 0
    assert adb_server.wait_for_state(phone.serial, "device", 20)
    final = resumes(args, capsys, 2, 3)
    assert all(final.entries[k] == e for k, e in kept.entries.items())


def test_frozen_phone_times_out(phone, cache_dir, tmp_path, capsys):
    third = block_model_names(cache_dir, 3)[2]
    phone.faults.freeze_on_command = third
    phone.faults.max_freeze = 60
    out = tmp_path / "lut.json"
    args = profile_args(phone, out, cache_dir, 3)
    t0 = time.monotonic()
    code, err, _ = run(args, capsys)
    assert code == 1 and "did not answer within 3 s" in err and "frozen" in err
    assert phone.frozen and len(LatencyTable.load(out)) == 2
    assert time.monotonic() - t0 < 45  # 3 s adb timeout + the two finished blocks
    phone.thaw()
    resumes(args, capsys, 2, 3)


def test_push_refused(phone, cache_dir, tmp_path, capsys):
    out = tmp_path / "lut.json"
    code, err, _ = run(profile_args(phone, out, cache_dir, 2), capsys)
    assert code == 0, err
    phone.faults.refuse_push = "No space left on device"
    args = profile_args(phone, out, cache_dir, 3)
    code, err, took = run(args, capsys)
    assert code == 1 and "refused pushing" in err and "No space left on device" in err
    assert "df /data" in err and took < 30 and len(LatencyTable.load(out)) == 2
    phone.faults.refuse_push = None
    resumes(args, capsys, 2, 3)


def test_benchmark_binary_crashes_or_fails(phone, cache_dir, tmp_path, capsys):
    names = block_model_names(cache_dir, 4)
    set_benchmark_fault(phone, f"crash {names[1]}\nexit {names[2]} 3")
    out = tmp_path / "lut.json"
    args = profile_args(phone, out, cache_dir, 4)
    code, err, took = run(args, capsys)
    assert code == 1 and "benchmark_model failed on 2 model(s)" in err
    assert "crashed (SIGSEGV, exit status 139)" in err and "exited with status 3" in err
    assert "Last lines:" in err and "Run it by hand" in err and took < 60
    kept = LatencyTable.load(out)
    assert len(kept) == 2  # blocks 1 and 4: the failures did not stop the others
    set_benchmark_fault(phone, None)
    resumes(args, capsys, 2, 4)


def test_throttling_flagged_and_remeasured(phone, cache_dir, tmp_path, capsys):
    cap = phone.host_path("/sys/devices/system/cpu/cpu7/cpufreq/scaling_max_freq")
    cap.write_text("1690000\n")  # the thermal governor capped a big core
    out = tmp_path / "lut.json"
    args = profile_args(phone, out, cache_dir, 2)
    code, err, _ = run(args, capsys)
    assert code == 0, err
    assert "2 block(s) were measured on a throttled phone" in err
    assert "cpu7 capped at 1690 of 2730 MHz" in err
    flagged = LatencyTable.load(out)
    assert [e["throttled"] for e in flagged.entries.values()] == [True, True]
    cap.write_text("2730000\n")
    code, err, _ = run(args, capsys)
    assert code == 0 and "0 already in the LUT, 2 measured now" in err
    again = LatencyTable.load(out)
    assert [e["throttled"] for e in again.entries.values()] == [False, False]
