"""latency.android.phones: device profiles and the device-info text parsers."""

from __future__ import annotations

import pytest

from latency.android.errors import DeviceInfoError
from latency.android.phones import (
    GALAXY_S10_EXYNOS,
    GALAXY_S10_SNAPDRAGON,
    DeviceProfile,
    big_cores_from_freqs,
    cpu_mask,
    hottest_watched,
    parse_cpu_max_freqs,
    parse_getprop,
    parse_thermal,
    profile_for,
)
from latency.errors import DeviceError

# Per-core max frequencies (kHz), 4+3+1: a Snapdragon 855 phone as read from sysfs
# (Silver 0-3 1785600, Gold 4-6 2419200, Prime 7 2841600).
SD855_FREQS = "\n".join(
    [f"cpu{i} 1785600" for i in range(4)] + [f"cpu{i} 2419200" for i in (4, 5, 6)]
    + ["cpu7 2841600"]
)
EXYNOS9820_FREQS = {0: 1950000, 1: 1950000, 2: 1950000, 3: 1950000,
                    4: 2314000, 5: 2314000, 6: 2730000, 7: 2730000}

S10_GETPROP = """\
[dalvik.vm.heapsize]: [512m]
[ro.board.platform]: [exynos5]
[ro.build.version.release]: [9]
[ro.product.model]: [SM-G973F]
[ro.product.device]: [beyond1]
"""


# -- known phones ------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["SM-G973F", "SM-G973N", "sm-g973f", " SM-G973F ", "SM-G973F/DS"])
def test_s10_exynos_by_model(model):
    profile = profile_for({"ro.product.model": model}, {})
    assert profile is GALAXY_S10_EXYNOS
    assert profile.big_cores == (6, 7) and profile.mask == "c0" and profile.max_threads == 2
    assert profile.soc == "Exynos 9820"
    assert {"BIG", "MID", "LITTLE"} <= set(profile.thermal_zones)


@pytest.mark.parametrize(
    "model", ["SM-G973U", "SM-G973U1", "SM-G973W", "SM-G9730", "SC-03L", "SCV41"]
)
def test_s10_snapdragon_by_model(model):
    profile = profile_for({"ro.product.model": model}, {})
    assert profile is GALAXY_S10_SNAPDRAGON
    assert profile.big_cores == (4, 5, 6, 7) and profile.mask == "f0"
    assert "cpu-1-7-usr" in profile.thermal_zones and len(profile.thermal_zones) == 8


def test_known_model_wins_over_frequencies():
    # Named profiles are returned as they are, whatever the frequencies say.
    freqs = parse_cpu_max_freqs(SD855_FREQS)
    assert profile_for({"ro.product.model": "SM-G973F"}, freqs) is GALAXY_S10_EXYNOS


def test_profile_from_device_script_text():
    props = parse_getprop(S10_GETPROP)
    assert profile_for(props, EXYNOS9820_FREQS) is GALAXY_S10_EXYNOS


def test_profile_limits_are_sane():
    for profile in (GALAXY_S10_EXYNOS, GALAXY_S10_SNAPDRAGON):
        assert 30 < profile.cooldown_temp_c < profile.max_temp_c < 90


# -- generic phones ----------------------------------------------------------------------------


def test_generic_phone_4_3_1_takes_prime_and_gold():
    props = {"ro.product.model": "Pixel 4", "ro.board.platform": "msmnile"}
    profile = profile_for(props, parse_cpu_max_freqs(SD855_FREQS))
    assert profile.name == "generic:Pixel 4" and profile.models == ("Pixel 4",)
    assert profile.soc == "msmnile"
    assert profile.big_cores == (4, 5, 6, 7) and profile.mask == "f0"
    assert profile.thermal_zones == ()


def test_generic_soc_prefers_ro_soc_model_and_survives_missing_props():
    props = {"ro.product.model": "X", "ro.soc.model": "SM8150", "ro.board.platform": "msmnile"}
    assert profile_for(props, {0: 1}).soc == "SM8150"
    bare = profile_for({}, {0: 1000000, 1: 1000000})
    assert bare.name == "generic:unknown-model" and bare.soc == "unknown"
    assert bare.models == () and bare.big_cores == (0, 1)


@pytest.mark.parametrize(
    ("freqs", "big"),
    [
        # Lone prime core far ahead (2.0 < 80% of 3.0): the prime core alone.
        ({**{i: 1800000 for i in range(4)}, 4: 2000000, 5: 2000000, 6: 2000000, 7: 3000000},
         (7,)),
        # 2+2+4 (Exynos 9820, Tensor): the two fastest only, as in the named S10 profile.
        (EXYNOS9820_FREQS, (6, 7)),
        # 4+4: the fast cluster.
        ({**{i: 1800000 for i in range(4)}, **{i: 2000000 for i in range(4, 8)}},
         (4, 5, 6, 7)),
        # 4+4+1 (Tensor G3 numbering): prime 2.91 GHz joined by 2.37 GHz (81%).
        ({**{i: 1704000 for i in range(4)}, **{i: 2367000 for i in range(4, 8)}, 8: 2910000},
         (4, 5, 6, 7, 8)),
        # One cluster: every core.
        ({i: 2000000 for i in range(4)}, (0, 1, 2, 3)),
    ],
)
def test_big_cores_rule(freqs, big):
    assert big_cores_from_freqs(freqs) == big


def test_big_cores_need_frequencies():
    with pytest.raises(DeviceInfoError, match="cpuinfo_max_freq") as info:
        profile_for({"ro.product.model": "Pixel 7"}, {})
    assert isinstance(info.value, DeviceError)


# -- masks and profile validation ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("cores", "mask"),
    [((6, 7), "c0"), ((4, 5, 6, 7), "f0"), ((0,), "1"), (range(8), "ff"), ((8,), "100"),
     ((7,), "80"), ((4, 5, 6, 7, 8), "1f0")],
)
def test_cpu_mask(cores, mask):
    assert cpu_mask(cores) == mask


@pytest.mark.parametrize("cores", [(), (-1,), (True,), (1.0,)])
def test_cpu_mask_rejects_bad_cores(cores):
    with pytest.raises(DeviceInfoError):
        cpu_mask(cores)


def test_profile_validation():
    with pytest.raises(DeviceInfoError, match="ascending"):
        DeviceProfile("x", (), "soc", (7, 6), ())
    with pytest.raises(DeviceInfoError, match="cooldown"):
        DeviceProfile("x", (), "soc", (6, 7), (), max_temp_c=40.0, cooldown_temp_c=45.0)


# -- getprop ------------------------------------------------------------------------------------


def test_getprop_tricky_values():
    text = (
        "[ro.product.model]: [SM-G973F]\r\n"
        "[ro.build.fingerprint]: [samsung/beyond1ltexx/beyond1:9/PPR1.180610.011/"
        "G973FXXU1ASCA:user/release-keys]\r\n"
        "[ro.empty]: []\r\n"
        "[weird.brackets]: [a]b [c]: d]\r\n"
        "[spaces]: [  two  words  ]\r\n"
        "\r\n"
        "[ro.multi]: [first line\r\n"
        "second: [line]\r\n"
        "[gsm.operator.alpha]: [,]\r\n"
    )
    props = parse_getprop(text)
    assert props == {
        "ro.product.model": "SM-G973F",
        "ro.build.fingerprint": "samsung/beyond1ltexx/beyond1:9/PPR1.180610.011/"
        "G973FXXU1ASCA:user/release-keys",
        "ro.empty": "",
        "weird.brackets": "a]b [c]: d",
        "spaces": "  two  words  ",
        "ro.multi": "first line\nsecond: [line",
        "gsm.operator.alpha": ",",
    }


def test_getprop_rejects_other_text():
    with pytest.raises(DeviceInfoError, match="line 2") as info:
        parse_getprop("[a]: [1]\nerror: no devices/emulators found\n")
    assert "getprop" in str(info.value)
    with pytest.raises(DeviceInfoError, match=r"\[ro.cut\]"):
        parse_getprop("[a]: [1]\n[ro.cut]: [no end")


# -- CPU frequencies ------------------------------------------------------------------------------


def test_parse_cpu_max_freqs():
    assert parse_cpu_max_freqs(SD855_FREQS) == {
        0: 1785600, 1: 1785600, 2: 1785600, 3: 1785600,
        4: 2419200, 5: 2419200, 6: 2419200, 7: 2841600,
    }
    # Offline cores (no readable frequency) are left out; CRLF and blanks are fine.
    assert parse_cpu_max_freqs("cpu0 1785600\r\ncpu1\r\n\r\ncpu2 ?\r\ncpu3 -\r\n") == {0: 1785600}


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("cpuX 1785600", "not 'cpuN MAXKHZ'"),
        ("cpu1 1.8GHz", "not 'cpuN MAXKHZ'"),
        ("policy0 1785600", "not 'cpuN MAXKHZ'"),
        ("cpu0 1785600\ncpu0 1785600", "repeats cpu0"),
        ("cpu3 0", "cpuinfo_max_freq"),
    ],
)
def test_parse_cpu_max_freqs_rejects(text, match):
    with pytest.raises(DeviceInfoError, match=match):
        parse_cpu_max_freqs(text)


# -- thermal ---------------------------------------------------------------------------------------

# Zone readings of a Snapdragon 855 Samsung phone (millidegrees), plus vendor oddities.
THERMAL = """\
cpu-0-0-usr 45900
cpu-0-1-usr 44800
cpu-1-0-usr 44400
cpu-1-1-usr 45500
cpu-1-7-usr 45100
gpuss-0-usr 41700
ddr-usr 45900
pm8150_tz 41999
battery 36300
battery 37
modem1
sdm therm 39000
xo-therm-adc -5000
camera_flash 25
"""


def test_parse_thermal_units_and_duplicates():
    temps = parse_thermal(THERMAL)
    assert temps["cpu-1-1-usr"] == 45.5 and temps["pm8150_tz"] == pytest.approx(41.999)
    assert temps["battery"] == 37.0  # two zones of one type: the hotter; 37 is already °C
    assert temps["camera_flash"] == 25.0  # below 200: already °C
    assert temps["xo-therm-adc"] == -5.0  # negative millidegrees
    assert temps["sdm therm"] == 39.0  # a type with a space
    assert "modem1" not in temps  # unreadable temperature: left out
    assert parse_thermal("BIG 199\nMID 200\nLITTLE 41000.0\r\n") == {
        "BIG": 199.0, "MID": 0.2, "LITTLE": 41.0,
    }
    assert parse_thermal("G3D nan\nISP inf\nNPU Invalid argument\n") == {}


def test_hottest_watched_zone():
    temps = parse_thermal(THERMAL)
    assert hottest_watched(GALAXY_S10_SNAPDRAGON, temps) == ("cpu-1-1-usr", 45.5)
    # Generic phones watch CPU-looking zones only (not ddr-usr at the same 45.9 °C, battery).
    generic = profile_for({"ro.product.model": "Pixel 4"}, parse_cpu_max_freqs(SD855_FREQS))
    assert hottest_watched(generic, temps) == ("cpu-0-0-usr", 45.9)
    exynos = parse_thermal("BIG 52000\nMID 47000\nLITTLE 44000\nG3D 40000\nbattery 60000\n")
    assert hottest_watched(GALAXY_S10_EXYNOS, exynos) == ("BIG", 52.0)
    assert hottest_watched(GALAXY_S10_EXYNOS, {"battery": 30.0}) is None
