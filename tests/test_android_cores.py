"""Big cores hot-plugged off (power saving, thermal limits): donnav2 reads the online cores
before it pins, refuses with the offline cores named and what to do, never pins elsewhere by
itself, and loses nothing measured. Pure parsers on recorded text; the rest on the emulated
Galaxy S10 with cores switched off in its sandbox (real adb server, adbutils, device scripts)."""

from __future__ import annotations

import time

import pytest
from adb_emulator.standin import (
    SLEEPING_FILE,
    block_model_names,
    profile_args,
    set_benchmark_fault,
    when_sleeping,
)

from latency.android.cores import (
    check_pinning,
    format_cpu_list,
    parse_cpu_list,
    parse_offline_line,
)
from latency.android.errors import CoresOfflineError, DeviceInfoError
from lut import LatencyTable
from nas.cli.latency_profile import main

adb = pytest.mark.adb
SERIAL = "R58M12345AB"


# ---- pure: the kernel's CPU lists and the script's offline line ------------------------------

@pytest.mark.parametrize(
    ("text", "cores"),
    [
        ("0-7\n", tuple(range(8))),  # all online
        ("0-5\n", (0, 1, 2, 3, 4, 5)),  # Exynos power saving: the M4 pair off
        ("0-3,6\n", (0, 1, 2, 3, 6)),  # mid cluster and cpu7 off
        ("0-3,6-7", (0, 1, 2, 3, 6, 7)),
        ("0", (0,)),
        ("  4,0-1 \n", (0, 1, 4)),  # any order, whitespace around
        ("", ()),
    ],
)
def test_parse_cpu_list_recorded(text: str, cores: tuple[int, ...]) -> None:
    assert parse_cpu_list(text) == cores
    assert parse_cpu_list(format_cpu_list(cores)) == cores


@pytest.mark.parametrize("text", ["0-", "a", "3-1", "0-3,,6", "0-3;6", "-1", "0-99999"])
def test_parse_cpu_list_refuses_garbage(text: str) -> None:
    with pytest.raises(DeviceInfoError, match="is not a list of cores like '0-3,6'"):
        parse_cpu_list(text, "--cores")


def test_format_cpu_list() -> None:
    assert format_cpu_list((4, 5, 6, 7)) == "4-7"
    assert format_cpu_list((7, 6)) == "6-7"
    assert format_cpu_list((0, 1, 2, 3, 6)) == "0-3,6"
    assert format_cpu_list((0, 6)) == "0,6"
    assert format_cpu_list(()) == ""


def test_parse_offline_line_recorded() -> None:
    recorded = (
        "@@donna progress run 1\n@@donna progress run 2\n"
        "@@donna cores-offline cores=6,7 online=0-3\n"
    )
    assert parse_offline_line(recorded) == ((6, 7), (0, 1, 2, 3))
    assert parse_offline_line("@@donna cores-offline cores=7 online=?\n") == ((7,), None)
    assert parse_offline_line("@@donna progress done\n") is None
    with pytest.raises(DeviceInfoError, match="offline-cores line"):
        parse_offline_line("@@donna cores-offline six and seven\n")


def test_check_pinning_names_offline_cores_and_the_fix() -> None:
    check_pinning(SERIAL, (6, 7), range(8))  # all online: fine
    check_pinning(SERIAL, (6, 7), None)  # no online list: nothing to check
    with pytest.raises(CoresOfflineError) as all_off:
        check_pinning(SERIAL, (6, 7), range(6))
    msg = str(all_off.value)
    assert msg.startswith(f"big cores 6-7 of phone {SERIAL} are offline (online now: 0-5)")
    assert "power saving off" in msg and "cool down" in msg and "--cores" in msg
    assert "never pins to other cores" in msg and "\n" not in msg
    assert all_off.value.offline == (6, 7) and all_off.value.online == tuple(range(6))
    with pytest.raises(CoresOfflineError) as partial:  # taskset would succeed on cpu6 alone
        check_pinning(SERIAL, (6, 7), range(7))
    assert str(partial.value).startswith(
        f"big core 7 of phone {SERIAL} is offline (online now: 0-6; benchmark_model would "
        "run on core 6 alone)"
    )
    with pytest.raises(CoresOfflineError, match="core 7 of --cores 4-7 of phone"):
        check_pinning(SERIAL, (4, 5, 6, 7), range(7), present=range(8), chosen=True)
    with pytest.raises(DeviceInfoError, match=r"has no core 9 \(cores present: 0-7\)"):
        check_pinning(SERIAL, (9,), range(8), present=range(8), chosen=True)
    # a phone without a named profile, big cores picked by frequency: offline cores without
    # a readable frequency may be the big ones, so picking from the others is refused
    with pytest.raises(CoresOfflineError, match=r"cores 6-7 of phone .* report no maximum"):
        check_pinning(SERIAL, (4, 5), range(6), present=range(8), freq_known=range(6))
    check_pinning(SERIAL, (6, 7), range(8), present=range(8), freq_known=range(8))


# ---- the emulated phone: hot-plugging in its sandbox -----------------------------------------

def run(args: list[str], capsys) -> tuple[int, str]:
    code = main(args)
    return code, capsys.readouterr().err


@adb
def test_emulated_taskset_fails_like_android_on_offline_cores(phone, adb_server) -> None:
    def sh(command: str):
        return adb_server.run("-s", phone.serial, "shell", command)

    phone.set_offline(4, 5, 6, 7)
    assert sh("cat /sys/devices/system/cpu/online").stdout == "0-3\n"
    assert sh("cat /sys/devices/system/cpu/cpu7/online").stdout == "0\n"
    assert sh("cat /sys/devices/system/cpu/cpu6/cpufreq/cpuinfo_max_freq").stdout == ""
    bad = sh("taskset c0 echo pinned")  # no core of the mask online: Invalid argument
    assert bad.returncode == 1 and "echo" not in bad.stdout
    assert "failed to set pid" in bad.stdout + bad.stderr
    assert "'s affinity: Invalid argument" in bad.stdout + bad.stderr
    assert sh("taskset f echo little").stdout == "little\n"
    phone.set_offline(7)  # some of the mask online: taskset succeeds on those
    assert sh("cat /sys/devices/system/cpu/online").stdout == "0-6\n"
    assert sh("taskset c0 echo pinned").stdout == "pinned\n"
    assert sh("cat /sys/devices/system/cpu/cpu6/cpufreq/cpuinfo_max_freq").stdout == "2730000\n"
    phone.set_offline()
    assert sh("cat /sys/devices/system/cpu/online").stdout == "0-7\n"
    with pytest.raises(ValueError, match="only cores 1-7"):
        phone.set_offline(0)


@adb
def test_device_class_reads_online_cores_afresh(phone) -> None:
    from latency.android.config import AdbConfig
    from latency.android.device import AndroidDevice

    with AndroidDevice(phone.serial, AdbConfig(io_timeout_s=10)) as dev:
        assert dev.online_cores() == tuple(range(8)) and dev.check_cores() == (6, 7)
        phone.set_offline(6, 7)
        assert dev.online_cores() == tuple(range(6))
        with pytest.raises(CoresOfflineError, match="big cores 6-7 of phone") as exc:
            dev.check_cores()
        assert exc.value.offline == (6, 7)
    with AndroidDevice(phone.serial, AdbConfig(io_timeout_s=10, cores=(5, 4))) as dev:
        assert dev.check_cores() == (4, 5) and dev.profile().mask == "30"


@adb
def test_all_big_cores_offline_refused_before_anything(phone, cache_dir, tmp_path, capsys):
    out = tmp_path / "lut.json"
    args = profile_args(phone, out, cache_dir, 2)
    code, err = run(args, capsys)
    assert code == 0, err
    before = LatencyTable.load(out).entries
    phone.set_offline(4, 5, 6, 7)  # Exynos power saving: mid and big clusters off
    t0 = time.monotonic()
    code, err = run(profile_args(phone, out, cache_dir, 3), capsys)
    assert code == 1 and time.monotonic() - t0 < 30
    assert f"error: big cores 6-7 of phone {phone.serial} are offline (online now: 0-3)" in err
    assert "turn power saving off" in err and "cool down" in err and "--cores" in err
    assert "Invalid argument" not in err  # not taskset's raw line
    assert LatencyTable.load(out).entries == before  # nothing measured is lost
    phone.set_offline()
    code, err = run(profile_args(phone, out, cache_dir, 3), capsys)
    assert code == 0 and "2 already in the LUT, 1 measured now" in err


@adb
def test_snapdragon_big_cores_offline_named(phone, cache_dir, tmp_path, capsys):
    phone.set_prop("ro.product.model", "SM-G973U")  # the S10's Snapdragon 855: cores 4-7
    phone.set_offline(4, 5, 6, 7)
    out = tmp_path / "lut.json"
    code, err = run(profile_args(phone, out, cache_dir, 1), capsys)
    assert code == 1 and f"big cores 4-7 of phone {phone.serial} are offline" in err
    assert not out.exists()
    phone.set_offline(6)  # some of them: refused too, naming the one
    code, err = run(profile_args(phone, out, cache_dir, 1), capsys)
    assert code == 1 and f"big core 6 of phone {phone.serial} is offline" in err
    assert "(online now: 0-5,7; benchmark_model would run on cores 4-5,7 alone)" in err


@adb
def test_some_big_cores_offline_refused(phone, cache_dir, tmp_path, capsys):
    phone.set_offline(7)
    out = tmp_path / "lut.json"
    code, err = run(profile_args(phone, out, cache_dir, 1), capsys)
    assert code == 1 and not out.exists()
    assert f"big core 7 of phone {phone.serial} is offline (online now: 0-6; " in err
    assert "benchmark_model would run on core 6 alone" in err


@adb
def test_cores_going_offline_between_blocks(phone, cache_dir, tmp_path, capsys):
    third = block_model_names(cache_dir, 3)[2]
    phone.faults.offline_on_command = third  # the run of block 3 starts with 6-7 off
    phone.faults.offline_cores = (6, 7)
    out = tmp_path / "lut.json"
    args = profile_args(phone, out, cache_dir, 3)
    code, err = run(args, capsys)
    assert code == 1
    assert f"big cores 6-7 of phone {phone.serial} went offline during profiling" in err
    assert "every block measured so far is saved" in err
    kept = LatencyTable.load(out)
    assert len(kept) == 2
    phone.set_offline()
    code, err = run(args, capsys)
    assert code == 0 and "2 already in the LUT, 1 measured now" in err
    final = LatencyTable.load(out)
    assert all(final.entries[k] == e for k, e in kept.entries.items())


@adb
def test_core_going_offline_during_a_run_discards_it(phone, cache_dir, tmp_path, capsys):
    second = block_model_names(cache_dir, 2)[1]
    set_benchmark_fault(phone, f"sleep {second} 3")  # block 2's run is long ...
    when_sleeping(phone, lambda: phone.set_offline(7))  # ... cpu7 goes offline in the middle
    out = tmp_path / "lut.json"
    code, err = run(profile_args(phone, out, cache_dir, 2), capsys)
    assert phone.host_path(SLEEPING_FILE).read_text().strip().endswith(second)  # it ran
    assert code == 1 and f"big core 7 of phone {phone.serial} went offline" in err
    assert len(LatencyTable.load(out)) == 1  # block 1 kept; block 2's run not trusted


@adb
def test_cores_option_pins_explicitly(phone, cache_dir, tmp_path, capsys):
    phone.set_offline(6, 7)  # a thermal limit took the M4 pair; pin to the A75 pair
    out = tmp_path / "a75.json"
    code, err = run([*profile_args(phone, out, cache_dir, 2), "--cores", "4-5"], capsys)
    assert code == 0, err
    lut = LatencyTable.load(out)
    assert len(lut) == 2 and lut.provenance["device"]["big_cores"] == [4, 5]
    assert lut.provenance["measure"]["taskset_mask"] == "30"
    assert "pinned to cores 4,5" in lut.provenance["runtime"]
    code, err = run([*profile_args(phone, out, cache_dir, 2), "--cores", "4-7"], capsys)
    assert code == 1 and f"cores 6-7 of --cores 4-7 of phone {phone.serial} are offline" in err
    code, err = run([*profile_args(phone, out, cache_dir, 2), "--cores", "9"], capsys)
    assert code == 1 and "has no core 9 (cores present: 0-7)" in err
    code, err = run([*profile_args(phone, out, cache_dir, 2), "--cores", "six"], capsys)
    assert code == 2 and "is not a list of cores like '0-3,6'" in err


@adb
def test_generic_phone_with_offline_cores_is_not_guessed(phone, cache_dir, tmp_path, capsys):
    phone.set_prop("ro.product.model", "XQ-UNKNOWN")  # no named profile: cores by frequency
    phone.set_offline(6, 7)  # their cpufreq reads fail, so 4-5 would look fastest
    code, err = run(profile_args(phone, tmp_path / "g.json", cache_dir, 1), capsys)
    assert code == 1 and "cores 6-7 of phone" in err and "report no maximum frequency" in err
    assert "--cores" in err
