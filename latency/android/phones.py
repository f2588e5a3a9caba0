"""Phones we measure on, and parsers of the device-info text the device scripts print.

A :class:`DeviceProfile` says which cores to pin ``benchmark_model`` to (``taskset`` mask)
and which thermal zones to watch before and between runs. Known phones are picked by
``ro.product.model``; any other phone gets a *generic* profile whose big cores come from the
per-core maximum frequencies (see :func:`big_cores_from_freqs`).

Text formats the device scripts must print (one item a line; blank lines are ignored):

``getprop``
    Android's own ``getprop`` output, unchanged: ``[ro.product.model]: [SM-G973F]``.
    Parsed by :func:`parse_getprop`.

CPU maximum frequencies
    ``cpuN MAXKHZ``, N the core number and MAXKHZ ``cpuinfo_max_freq`` in kHz::

        for c in /sys/devices/system/cpu/cpu[0-9]*; do
          echo "$(basename "$c") $(cat "$c/cpufreq/cpuinfo_max_freq" 2>/dev/null)"
        done

    A core whose frequency cannot be read (offline, no cpufreq) prints ``cpuN`` alone (or
    ``cpuN ?``) and is left out. Parsed by :func:`parse_cpu_max_freqs`.

Thermal zones
    ``TYPE VALUE``, TYPE the zone's ``type`` and VALUE its ``temp``::

        for z in /sys/class/thermal/thermal_zone*; do
          echo "$(cat "$z/type") $(cat "$z/temp" 2>/dev/null)"
        done

    Zones whose temperature cannot be read print TYPE alone and are left out. Parsed by
    :func:`parse_thermal`.

The temperature limits of the profiles are measurement policy, not hardware limits: a run
starts only when every watched zone is at or below ``cooldown_temp_c``, and a run during which
a watched zone went above ``max_temp_c`` is suspect (throttling) and should be repeated.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from latency.android.errors import DeviceInfoError

__all__ = [
    "GALAXY_S10_EXYNOS",
    "GALAXY_S10_SNAPDRAGON",
    "KNOWN_PROFILES",
    "PRIME_JOIN_RATIO",
    "DeviceProfile",
    "big_cores_from_freqs",
    "cpu_mask",
    "generic_profile",
    "hottest_watched",
    "parse_cpu_max_freqs",
    "parse_getprop",
    "parse_thermal",
    "profile_for",
    "watched_zone_types",
]

# Measurement policy (see the module docstring), shared by every profile.
DEFAULT_MAX_TEMP_C = 48.0
DEFAULT_COOLDOWN_TEMP_C = 40.0

# A lone fastest ("prime") core is joined by the next-fastest cluster when that cluster's
# maximum frequency is at least this fraction of the prime core's.
PRIME_JOIN_RATIO = 0.8

# Readings with an absolute value below this are taken as degrees Celsius already, larger
# ones as millidegrees (the Linux thermal sysfs unit).
CELSIUS_LIMIT = 200


def cpu_mask(cores: Iterable[int]) -> str:
    """Hex ``taskset`` affinity mask of ``cores`` (no ``0x``): ``(6, 7)`` -> ``"c0"``."""
    cores = tuple(cores)
    if not cores:
        raise DeviceInfoError("no cores to build a taskset mask from; give at least one core")
    bad = [c for c in cores if not isinstance(c, int) or isinstance(c, bool) or c < 0]
    if bad:
        raise DeviceInfoError(
            f"core numbers must be non-negative integers, got {bad!r}; use the N of /sys/"
            "devices/system/cpu/cpuN"
        )
    mask = 0
    for core in cores:
        mask |= 1 << core
    return f"{mask:x}"


@dataclass(frozen=True)
class DeviceProfile:
    """What the measurement needs to know about one kind of phone.

    ``models`` are ``ro.product.model`` values; ``big_cores`` the cores ``benchmark_model``
    is pinned to (run it with at most ``len(big_cores)`` threads); ``thermal_zones`` the
    thermal-zone *types* to watch (empty: none known, see :func:`hottest_watched`).
    """

    name: str
    models: tuple[str, ...]
    soc: str
    big_cores: tuple[int, ...]
    thermal_zones: tuple[str, ...]
    max_temp_c: float = DEFAULT_MAX_TEMP_C
    cooldown_temp_c: float = DEFAULT_COOLDOWN_TEMP_C

    def __post_init__(self) -> None:
        cpu_mask(self.big_cores)  # validates
        if tuple(sorted(set(self.big_cores))) != self.big_cores:
            raise DeviceInfoError(
                f"profile {self.name!r}: big_cores must be sorted and unique, "
                f"got {self.big_cores}; write them in ascending order"
            )
        if not self.cooldown_temp_c < self.max_temp_c:
            raise DeviceInfoError(
                f"profile {self.name!r}: cooldown_temp_c ({self.cooldown_temp_c}) must be below "
                f"max_temp_c ({self.max_temp_c}); lower the cooldown temperature"
            )

    @property
    def mask(self) -> str:
        """``taskset`` mask of the big cores, e.g. ``"c0"``."""
        return cpu_mask(self.big_cores)

    @property
    def max_threads(self) -> int:
        return len(self.big_cores)


# Samsung Galaxy S10, Exynos 9820 (beyond1lte). Cores 0-3 Cortex-A55 1.95 GHz, 4-5 Cortex-A75
# 2.31 GHz, 6-7 Mongoose M4 2.73 GHz; only the two M4 cores are used, so runs never straddle
# two micro-architectures. The zone types are the node names under /thermal-zones in the
# Exynos 9820 device tree (LineageOS/android_kernel_samsung_exynos9820,
# arch/arm64/boot/dts/exynos/exynos9820.dts): BIG, MID, LITTLE, G3D, ISP. Korean SM-G973N
# phones are Exynos too (LineageOS' beyond1lte build covers SM-G973F and SM-G973N).
GALAXY_S10_EXYNOS = DeviceProfile(
    name="galaxy-s10-exynos9820",
    models=("SM-G973F", "SM-G973N"),
    soc="Exynos 9820",
    big_cores=(6, 7),
    thermal_zones=("BIG", "MID", "LITTLE", "G3D", "ISP"),
)

# Samsung Galaxy S10, Snapdragon 855 / SM8150 (beyond1q). Cores 0-3 Cortex-A55 1.78 GHz, 4-6
# Cortex-A76 2.42 GHz, 7 Cortex-A76 "prime" 2.84 GHz; all four A76 cores are used. The zone
# types are the gold-cluster TSENS zones of the SM8150 device tree as shipped in the S10
# Snapdragon kernel (mentalmuso/android_kernel_samsung_beyondq,
# arch/arm64/boot/dts/qcom/sm8150-thermal.dtsi): cpu-1-0-usr ... cpu-1-7-usr (two sensors
# per gold core). Models: U/U1 USA, W Canada, 0/8 China, C/SC-03L/SCV41 Japan.
GALAXY_S10_SNAPDRAGON = DeviceProfile(
    name="galaxy-s10-snapdragon855",
    models=(
        "SM-G973U", "SM-G973U1", "SM-G973W", "SM-G9730", "SM-G9738", "SM-G973C",
        "SC-03L", "SCV41",
    ),
    soc="Snapdragon 855 (SM8150)",
    big_cores=(4, 5, 6, 7),
    thermal_zones=tuple(f"cpu-1-{i}-usr" for i in range(8)),
)

KNOWN_PROFILES: tuple[DeviceProfile, ...] = (GALAXY_S10_EXYNOS, GALAXY_S10_SNAPDRAGON)

# Zone types that read a CPU (or the SoC die) on common SoCs; watched when a profile names
# none: Qualcomm cpu-*/cpuss-*/apc*, Exynos BIG/MID/LITTLE, Google/Tensor BIG/MID/LITTLE and
# soc_therm, MediaTek mtktscpu and cpu-big/little-*, generic "cpu-thermal"/"soc_thermal".
_CPU_ZONE = re.compile(r"cpu|cluster|apc|^big$|^mid$|^little$|soc|mtktscpu", re.IGNORECASE)


def big_cores_from_freqs(max_freqs_khz: Mapping[int, int]) -> tuple[int, ...]:
    """The cores to benchmark on, from each core's maximum frequency.

    Rule: the cores of the fastest cluster (cores sharing the highest max frequency). When
    that "cluster" is a single prime core, the next-fastest cluster joins it if its max
    frequency is at least :data:`PRIME_JOIN_RATIO` (80%) of the prime core's, e.g. Snapdragon
    855 (1x 2.84 + 3x 2.42 GHz) -> 4 cores; a 2+2+4 layout (Exynos 9820, Tensor) keeps its 2
    fastest cores; a lone prime core far ahead of the rest stays alone (run 1 thread).
    Frequency alone cannot tell micro-architectures apart, so named profiles take precedence.
    """
    if not max_freqs_khz:
        raise DeviceInfoError(
            "no CPU maximum frequencies to find the big cores from; the device script must "
            "print 'cpuN MAXKHZ' lines from /sys/devices/system/cpu/cpuN/cpufreq/"
            "cpuinfo_max_freq"
        )
    by_freq: dict[int, list[int]] = {}
    for core, freq in max_freqs_khz.items():
        by_freq.setdefault(freq, []).append(core)
    freqs = sorted(by_freq, reverse=True)
    top = freqs[0]
    cores = list(by_freq[top])
    if len(cores) == 1 and len(freqs) > 1 and freqs[1] >= PRIME_JOIN_RATIO * top:
        cores += by_freq[freqs[1]]
    return tuple(sorted(cores))


def generic_profile(props: Mapping[str, str], max_freqs_khz: Mapping[int, int]) -> DeviceProfile:
    """Profile of a phone we know nothing about: big cores from frequencies, no known zones."""
    model = _model(props)
    soc = next(
        (props[k].strip() for k in ("ro.soc.model", "ro.board.platform", "ro.hardware")
         if props.get(k, "").strip()),
        "unknown",
    )
    return DeviceProfile(
        name=f"generic:{model or 'unknown-model'}",
        models=(model,) if model else (),
        soc=soc,
        big_cores=big_cores_from_freqs(max_freqs_khz),
        thermal_zones=(),
    )


def profile_for(props: Mapping[str, str], max_freqs_khz: Mapping[int, int]) -> DeviceProfile:
    """The profile of the phone with these ``getprop`` values and per-core max frequencies.

    Known phones are matched on ``ro.product.model`` (case-insensitive, a ``/DS``-style
    suffix ignored) and their profile is returned as is; any other phone gets
    :func:`generic_profile`.
    """
    model = _model(props).upper().split("/")[0]
    for profile in KNOWN_PROFILES:
        if model in profile.models:
            return profile
    return generic_profile(props, max_freqs_khz)


def hottest_watched(
    profile: DeviceProfile, temps_c: Mapping[str, float]
) -> tuple[str, float] | None:
    """(zone type, °C) of the hottest zone the profile watches, or ``None`` if none is there.

    A profile without zone names (generic phones) watches the zones whose type looks like a
    CPU or SoC sensor (``cpu``, ``cluster``, ``apc``, ``soc``, ``BIG``/``MID``/``LITTLE``...).
    """
    if profile.thermal_zones:
        watched = {z: t for z, t in temps_c.items() if z in profile.thermal_zones}
    else:
        watched = {z: t for z, t in temps_c.items() if _CPU_ZONE.search(z)}
    if not watched:
        return None
    zone = max(watched, key=watched.__getitem__)
    return zone, watched[zone]


def watched_zone_types(profile: DeviceProfile, zone_types: Iterable[str]) -> tuple[str, ...]:
    """The zone types to watch on a phone with these zones (same rule as
    :func:`hottest_watched`): the profile's own, else those that look like a CPU/SoC sensor."""
    present = list(dict.fromkeys(zone_types))
    if profile.thermal_zones:
        return tuple(z for z in profile.thermal_zones if z in present)
    return tuple(z for z in present if _CPU_ZONE.search(z))


# -- parsers of device-script output ---------------------------------------------------------

_GETPROP_LINE = re.compile(r"^\[([^\]]*)\]: \[(.*)$")
_CPU_LINE = re.compile(r"^cpu(\d+)(?:\s+(\S+))?\s*$")
_UNKNOWN = {"", "?", "-"}


def parse_getprop(text: str) -> dict[str, str]:
    """``{key: value}`` from Android ``getprop`` output (``[key]: [value]`` lines).

    Values are taken verbatim between the first ``[`` after ``]: `` and the last ``]`` of the
    line, so they may hold ``]``, ``:``, ``[`` and spaces; a value with line breaks continues
    on the next lines until one ends with ``]``.
    """
    props: dict[str, str] = {}
    pending: tuple[str, list[str], int] | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip("\r")
        if pending is not None:
            key, parts, _ = pending
            if line.endswith("]"):
                props[key] = "\n".join([*parts, line[:-1]])
                pending = None
            else:
                parts.append(line)
            continue
        if not line.strip():
            continue
        m = _GETPROP_LINE.match(line)
        if m is None:
            raise DeviceInfoError(
                f"getprop output line {number} is not '[key]: [value]': {line!r}; the device "
                "script must print `getprop` output unchanged (no other lines)"
            )
        key, rest = m[1], m[2]
        if rest.endswith("]"):
            props[key] = rest[:-1]
        else:
            pending = (key, [rest], number)
    if pending is not None:
        raise DeviceInfoError(
            f"getprop output ends inside the value of [{pending[0]}] (opened on line "
            f"{pending[2]}); the output was cut short, capture all of `getprop`"
        )
    return props


def parse_cpu_max_freqs(text: str) -> dict[int, int]:
    """``{core: max kHz}`` from ``cpuN MAXKHZ`` lines (format in the module docstring)."""
    freqs: dict[int, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        m = _CPU_LINE.match(line)
        value = (m[2] or "") if m else ""
        if m is None or (value not in _UNKNOWN and not value.isdigit()):
            raise DeviceInfoError(
                f"CPU frequency line {number} is not 'cpuN MAXKHZ': {line!r}; print "
                "`cpuN $(cat /sys/devices/system/cpu/cpuN/cpufreq/cpuinfo_max_freq)`"
            )
        core = int(m[1])
        if core in freqs:
            raise DeviceInfoError(
                f"CPU frequency line {number} repeats cpu{core}; print each core once"
            )
        if value in _UNKNOWN:
            continue  # offline core, or no cpufreq: left out (see module docstring)
        if int(value) <= 0:
            raise DeviceInfoError(
                f"CPU frequency line {number} gives cpu{core} a max frequency of {value} kHz; "
                "read cpuinfo_max_freq, not scaling_cur_freq of an idle core"
            )
        freqs[core] = int(value)
    return freqs


def parse_thermal(text: str) -> dict[str, float]:
    """``{zone type: °C}`` from ``TYPE VALUE`` lines (format in the module docstring).

    VALUE is millidegrees Celsius (the sysfs unit) unless its absolute value is below 200,
    then it is already degrees (some vendor zones). Several zones of one type (common: two
    ``battery`` zones) keep the highest reading. Zones without a readable value are left out.
    """
    temps: dict[str, float] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        parts = line.rsplit(None, 1)
        if len(parts) == 1:
            continue  # type only: temp unreadable
        zone, value = parts
        try:
            reading = float(value)
        except ValueError:
            continue  # a multi-word type without a reading, or an error text: unreadable
        if not math.isfinite(reading):
            continue
        celsius = reading if abs(reading) < CELSIUS_LIMIT else reading / 1000.0
        temps[zone] = max(celsius, temps.get(zone, celsius))
    return temps


def _model(props: Mapping[str, str]) -> str:
    return (props.get("ro.product.model") or props.get("ro.product.vendor.model") or "").strip()
