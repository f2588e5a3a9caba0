"""Which CPU cores of a phone are online, and the check that runs before any pinning.

Exynos and Snapdragon phones hot-plug cores off in power-saving and thermal modes; the big
cores go first. ``taskset`` with a mask none of whose cores is online then fails with
"failed to set pid N's affinity: Invalid argument", and with only some of them online it
succeeds on those few, so ``--threads 2`` would share one core. donnav2 therefore reads the
online cores before it pins and refuses (:class:`CoresOfflineError`) while any core it would
pin to is offline; it never falls back to other cores by itself. ``device_scripts/
run_benchmark.sh`` checks again before and after every run, so a core switched off between
blocks is reported the same way (its line is parsed by :func:`parse_offline_line`).

Text formats (pure functions, tested on recorded text):

CPU lists
    The kernel's list format of ``/sys/devices/system/cpu/online`` (and ``present``,
    ``possible``): comma-separated cores or ``A-B`` ranges, ``0-7``, ``0-3,6``, ``0-3,6-7``.
    Parsed by :func:`parse_cpu_list`, written by :func:`format_cpu_list`. ``--cores`` takes
    the same format.

The script's offline line
    ``@@donna cores-offline cores=6,7 online=0-5``: the pinned cores that are offline
    (comma-separated) and the online list as the kernel printed it (``?`` if unreadable).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from latency.android.errors import CoresOfflineError, DeviceInfoError

__all__ = [
    "CORES_OPTION",
    "OFFLINE_MARK",
    "ONLINE_PATH",
    "PRESENT_PATH",
    "check_pinning",
    "format_cpu_list",
    "offline_error",
    "offline_message",
    "parse_cpu_list",
    "parse_offline_line",
]

ONLINE_PATH = "/sys/devices/system/cpu/online"
PRESENT_PATH = "/sys/devices/system/cpu/present"
OFFLINE_MARK = "@@donna cores-offline "
CORES_OPTION = "--cores"

_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")
_OFFLINE = re.compile(r"^cores=([0-9,]+) online=(\S*)$")
MAX_CORE = 4095  # arm64 NR_CPUS is at most 4096: a larger number is garbage


def parse_cpu_list(text: str, what: str = "CPU list") -> tuple[int, ...]:
    """Sorted, unique cores of a kernel CPU list (``"0-3,6"`` -> ``(0, 1, 2, 3, 6)``).

    Surrounding whitespace (the file's newline) is ignored; an empty list gives ``()``.
    Anything else that is not ``N`` or ``A-B`` items (``A <= B``) separated by commas raises
    :class:`DeviceInfoError` naming ``what``.
    """
    body = text.strip()
    if not body:
        return ()
    cores: set[int] = set()
    for item in body.split(","):
        m = _RANGE.match(item.strip())
        lo = int(m[1]) if m else -1
        hi = int(m[2]) if m and m[2] is not None else lo
        if m is None or hi < lo or hi > MAX_CORE:
            raise DeviceInfoError(
                f"{what} {body!r} is not a list of cores like '0-3,6' (item {item.strip()!r});"
                " write core numbers and ranges A-B separated by commas"
            )
        cores.update(range(lo, hi + 1))
    return tuple(sorted(cores))


def format_cpu_list(cores: Iterable[int]) -> str:
    """The kernel's list format of ``cores``: ``(4, 5, 6, 7)`` -> ``"4-7"``, ``(0, 6)`` ->
    ``"0,6"``, ``(6, 7)`` -> ``"6-7"``; ``()`` -> ``""``."""
    items: list[str] = []
    run: list[int] = []
    for core in sorted(set(cores)):
        if run and core == run[-1] + 1:
            run.append(core)
            continue
        if run:
            items.append(_item(run))
        run = [core]
    if run:
        items.append(_item(run))
    return ",".join(items)


def _item(run: list[int]) -> str:
    return str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}"


def _plural(cores: tuple[int, ...]) -> str:
    return f"core {cores[0]}" if len(cores) == 1 else f"cores {format_cpu_list(cores)}"


def offline_message(
    serial: str,
    pinned: tuple[int, ...],
    offline: tuple[int, ...],
    online: tuple[int, ...] | None,
    *,
    chosen: bool = False,
    during: bool = False,
) -> str:
    """The one-line message for :class:`CoresOfflineError`: which of the ``pinned`` cores are
    ``offline``, what is online, and what to do. ``chosen``: the cores came from ``--cores``;
    ``during``: the device script found them offline between or after runs."""
    whose = f" of {CORES_OPTION} {format_cpu_list(pinned)}" if chosen else ""
    verb = "went" if during else "are" if len(offline) > 1 else "is"
    now = "unknown" if online is None else format_cpu_list(online) or "none"
    rest = tuple(c for c in pinned if c not in offline)
    alone = f"; benchmark_model would run on {_plural(rest)} alone" if rest else ""
    what = (
        f"{'' if chosen else 'big '}{_plural(offline)}{whose} of phone {serial} {verb} offline"
        f"{' during profiling' if during else ''} (online now: {now}{alone})"
    )
    fix = (
        f"The phone switched {'them' if len(offline) > 1 else 'it'} off (power saving or "
        "thermal limits): turn power saving off, "
        "let the phone cool down (screen off, out of its case, not charging) and run the same "
        f"command again, or pin explicitly with {CORES_OPTION} LIST (online cores only; the "
        "LUT then holds those cores' latencies). donnav2 never pins to other cores by itself"
    )
    kept = "; every block measured so far is saved and the rerun resumes" if during else ""
    return f"{what}. {fix}{kept}"


def offline_error(
    serial: str,
    pinned: Iterable[int],
    offline: Iterable[int],
    online: Iterable[int] | None,
    *,
    chosen: bool = False,
    during: bool = False,
) -> CoresOfflineError:
    """:class:`CoresOfflineError` with :func:`offline_message` (arguments as there)."""
    off = tuple(sorted(set(offline)))
    now = None if online is None else tuple(sorted(set(online)))
    message = offline_message(
        serial, tuple(sorted(set(pinned))), off, now, chosen=chosen, during=during
    )
    return CoresOfflineError(message, offline=off, online=now)


def check_pinning(
    serial: str,
    pinned: Iterable[int],
    online: Iterable[int] | None,
    *,
    present: Iterable[int] | None = None,
    chosen: bool = False,
    freq_known: Iterable[int] | None = None,
) -> None:
    """Refuse to pin to ``pinned`` unless every one of them is ``online``.

    ``online``/``present``: the phone's online and present cores (``None``: unreadable, that
    check is skipped); ``chosen``: the cores came from ``--cores`` (they must exist:
    :class:`DeviceInfoError` otherwise). ``freq_known``: for a phone without a named profile,
    whose big cores were picked by frequency, the cores whose maximum frequency could be
    read; a present core outside it (offline cores often have none) may be a big core the
    pick missed, so that is refused too. Raises :class:`CoresOfflineError`.
    """
    pins = tuple(sorted(set(pinned)))
    have = None if present is None else tuple(sorted(set(present)))
    if chosen and have is not None and (missing := [c for c in pins if c not in have]):
        raise DeviceInfoError(
            f"{CORES_OPTION} {format_cpu_list(pins)}: phone {serial} has no "
            f"{_plural(tuple(missing))} (cores present: {format_cpu_list(have)}); choose "
            "among those"
        )
    if online is not None:
        now = tuple(sorted(set(online)))
        offline = [c for c in pins if c not in now]
        if offline:
            raise offline_error(serial, pins, offline, now, chosen=chosen)
    if chosen or freq_known is None or have is None:
        return
    known = set(freq_known)
    unknown = tuple(c for c in have if c not in known)
    if unknown:
        now_text = "unknown" if online is None else format_cpu_list(online)
        raise CoresOfflineError(
            f"{_plural(unknown)} of phone {serial} report no maximum frequency (offline? "
            f"online now: {now_text}), so its big cores cannot be told from the others; turn "
            "power saving off, let the phone cool down and run the same command again, or "
            f"pin explicitly with {CORES_OPTION} LIST. donnav2 never guesses",
            offline=unknown, online=None if online is None else tuple(sorted(set(online))),
        )


def parse_offline_line(text: str) -> tuple[tuple[int, ...], tuple[int, ...] | None] | None:
    """(offline cores, online cores or ``None`` if unreadable) from the first
    ``@@donna cores-offline`` line of a device script's output, or ``None`` if there is none."""
    for raw in text.splitlines():
        line = raw.strip()
        if not line.startswith(OFFLINE_MARK):
            continue
        m = _OFFLINE.match(line[len(OFFLINE_MARK):].strip())
        if m is None:
            raise DeviceInfoError(
                f"cannot read the device script's offline-cores line {line!r}; expected "
                "'@@donna cores-offline cores=6,7 online=0-5'"
            )
        offline = tuple(sorted({int(c) for c in m[1].split(",") if c}))
        online = None if m[2] in ("", "?") else parse_cpu_list(m[2], "online CPU list")
        return offline, online
    return None
