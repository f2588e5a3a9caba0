"""The emulated phone's filesystem (a folder on the host) and how its commands are run.

The sandbox folder ``root`` stands for the phone's ``/``: ``/data/local/tmp/x`` is
``root/data/local/tmp/x``. :func:`populate` lays out an Exynos 9820 (Galaxy S10) tree: the cpufreq
and thermal sysfs files, ``/proc/cpuinfo`` and ``/proc/meminfo``, ``/system/build.prop`` and small
stand-in commands in ``/system/bin`` (``getprop``, ``taskset``, ``nproc``).

Two ways to run a device command, chosen by :func:`.runners.make_runner`:

``namespace`` (preferred)
    One holder process per device lives in new user, mount and PID namespaces, chrooted into a
    tmpfs root that holds: the host's ``/usr`` and ``/etc`` (read-only; ``/bin``, ``/lib``... as
    the host has them), the host's ``/dev``, a fresh ``/proc`` (only the device's processes) with
    the sandbox's ``cpuinfo``/``meminfo`` bound over it, and every top-level folder of the sandbox
    (``/data``, ``/system``, ``/sys``, ``/sdcard``...) bound read-only except ``/data/local/tmp``
    and ``/sdcard``. Each command enters those namespaces with ``nsenter``, so device paths are
    real paths to every program, including scripts that read them from files. Nothing else of
    the host is visible (no ``/tmp``, ``/home``, ``/work``; ``TMPDIR`` is ``/data/local/tmp`` as
    on Android); ``/`` itself is read-only, so writing elsewhere than the two writable folders
    fails with "Read-only file system" (a phone says "Permission denied" for most of those).
    The mounts are made once, at ``start()``: files and folders added to the sandbox later are
    visible at once, but a new *top-level* folder is not (create it before ``start()``). Files
    bound over ``/proc`` must be changed in place, not replaced by a rename.

``rewrite`` (fallback when namespaces cannot be created)
    The command runs on the host in ``root/data/local/tmp``; absolute device paths that begin
    with a sandbox top-level folder (``/data``, ``/sys``, ``/system``, ``/sdcard``...) or
    ``/proc/cpuinfo``/``/proc/meminfo`` are rewritten to sandbox paths in the command text only.
    Paths inside files that the command reads (a pushed script, say) are not rewritten: such
    scripts can spell them ``${ANDROID_ROOT_SANDBOX}/sys/...``, which is empty in namespace mode
    and on a real phone. Nothing stops a command from touching host paths in this mode.

Commands run under the host's ``/bin/sh`` (dash or bash, not Android's mksh) with the host's
tools (GNU/busybox, not toybox), as root inside the namespace (a phone's adb shell is uid 2000).

The sync service (push/pull/stat/list) sees the sandbox only, through :class:`Sandbox`: paths
resolve with chroot semantics (``..`` stops at ``/``, absolute symlink targets restart at the
sandbox's ``/``), so no device path reaches outside ``root``; a host path that still would is
refused with "Permission denied". Writes are allowed under ``/data/local/tmp`` and ``/sdcard``
only: elsewhere in ``/data`` they fail with "Permission denied", in other folders with
"Read-only file system", as for adb's shell user.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

DEVICE_TMP = "/data/local/tmp"
WRITABLE_DIRS = ("/data/local/tmp", "/sdcard")
HOST_DIRS = ("usr", "etc", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
RESERVED_TOP = (*HOST_DIRS, "dev", "proc", "tmp")
PROC_OVERLAYS = ("cpuinfo", "meminfo")
MAX_SYMLINKS = 40

DEFAULT_PROPS: dict[str, str] = {
    "ro.product.model": "SM-G973F",
    "ro.product.manufacturer": "samsung",
    "ro.product.brand": "samsung",
    "ro.product.name": "beyond1ltexx",
    "ro.product.device": "beyond1",
    "ro.product.board": "exynos9820",
    "ro.board.platform": "exynos9820",
    "ro.hardware": "exynos9820",
    "ro.product.cpu.abi": "arm64-v8a",
    "ro.product.cpu.abilist": "arm64-v8a,armeabi-v7a,armeabi",
    "ro.build.fingerprint": (
        "samsung/beyond1ltexx/beyond1:12/SP1A.210812.016/G973FXXSGHWC2:user/release-keys"
    ),
    "ro.build.id": "SP1A.210812.016",
    "ro.build.type": "user",
    "ro.build.version.release": "12",
    "ro.build.version.sdk": "31",
    "ro.serialno": "R58M12345AB",
}

# Exynos 9820: 4x Cortex-A55, 2x Cortex-A75, 2x Samsung Mongoose M4 (frequencies in kHz).
CLUSTERS: tuple[dict[str, object], ...] = (
    {"cpus": (0, 1, 2, 3), "min": 208000, "max": 1950000, "zone": "LITTLE",
     "implementer": "0x41", "variant": "0x1", "part": "0xd05", "revision": 0},
    {"cpus": (4, 5), "min": 507000, "max": 2314000, "zone": "MID",
     "implementer": "0x41", "variant": "0x2", "part": "0xd0a", "revision": 1},
    {"cpus": (6, 7), "min": 520000, "max": 2730000, "zone": "BIG",
     "implementer": "0x53", "variant": "0x1", "part": "0x003", "revision": 0},
)
NUM_CPUS = 8
DEFAULT_TEMP_MILLI_C = 38000
_FREQ_FILES = (
    ("cpuinfo_max_freq", "max"), ("cpuinfo_min_freq", "min"), ("scaling_max_freq", "max"),
    ("scaling_min_freq", "min"), ("scaling_cur_freq", "max"),
)
_GOVERNORS = "schedutil performance powersave userspace ondemand conservative"
_CPU_FEATURES = (
    "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc "
    "dcpop asimddp"
)


def _write(path: Path, text: str, mode: int | None = None, overwrite: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if overwrite or not path.exists():
        path.write_text(text)
    if mode is not None:
        path.chmod(mode)


def build_prop_text(props: Mapping[str, str]) -> str:
    return "".join(f"{key}={props[key]}\n" for key in sorted(props))


def populate(root: Path, props: Mapping[str, str], props_path: str) -> None:
    """Create the phone's tree under ``root``; existing files are kept (tests may pre-seed)."""
    for folder in ("data/local/tmp", "sdcard", "system/bin", "system/etc"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    write_props(root, props)
    cpu = root / "sys/devices/system/cpu"
    span = f"0-{NUM_CPUS - 1}\n"
    for name in ("online", "possible", "present"):
        _write(cpu / name, span)
    cpuinfo = []
    for cluster in CLUSTERS:
        cpus = cluster["cpus"]
        assert isinstance(cpus, tuple)
        related = " ".join(str(c) for c in cpus) + "\n"
        for n in cpus:
            freq = cpu / f"cpu{n}" / "cpufreq"
            _write(cpu / f"cpu{n}" / "online", "1\n")
            _write(freq / "cpuinfo_max_freq", f"{cluster['max']}\n")
            _write(freq / "cpuinfo_min_freq", f"{cluster['min']}\n")
            _write(freq / "scaling_max_freq", f"{cluster['max']}\n")
            _write(freq / "scaling_min_freq", f"{cluster['min']}\n")
            _write(freq / "scaling_cur_freq", f"{cluster['max']}\n")
            _write(freq / "scaling_governor", "schedutil\n")
            _write(freq / "scaling_available_governors", _GOVERNORS + "\n")
            _write(freq / "related_cpus", related)
            _write(freq / "affected_cpus", related)
            cpuinfo.append(
                f"processor\t: {n}\nBogoMIPS\t: 52.00\nFeatures\t: {_CPU_FEATURES}\n"
                f"CPU implementer\t: {cluster['implementer']}\nCPU architecture: 8\n"
                f"CPU variant\t: {cluster['variant']}\nCPU part\t: {cluster['part']}\n"
                f"CPU revision\t: {cluster['revision']}\n\n"
            )
    _write(root / "proc/cpuinfo", "".join(cpuinfo))
    _write(
        root / "proc/meminfo",
        "MemTotal:        7687628 kB\nMemFree:          912344 kB\n"
        "MemAvailable:    3521060 kB\nSwapTotal:       2097148 kB\n",
    )
    for zone, cluster in enumerate(reversed(CLUSTERS)):
        tz = root / "sys/class/thermal" / f"thermal_zone{zone}"
        _write(tz / "type", f"{cluster['zone']}\n")
        _write(tz / "temp", f"{DEFAULT_TEMP_MILLI_C}\n")
    bin_dir = root / "system/bin"
    _write(bin_dir / "getprop", GETPROP.replace("@PROPS@", props_path), 0o755, overwrite=True)
    _write(bin_dir / "taskset", TASKSET, 0o755, overwrite=True)
    _write(bin_dir / "nproc", NPROC, 0o755, overwrite=True)


def cpu_list_text(cores: Iterable[int]) -> str:
    """The kernel's list format: ``(0, 1, 2, 3, 6)`` -> ``"0-3,6"``."""
    items: list[list[int]] = []
    for core in sorted(set(cores)):
        if items and core == items[-1][-1] + 1:
            items[-1].append(core)
        else:
            items.append([core])
    return ",".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in items)


def set_offline(root: Path, offline: Iterable[int]) -> None:
    """Hot-plug exactly the ``offline`` cores off (all others on), as the kernel shows it:
    ``/sys/devices/system/cpu/online`` lists the online cores (``0-5``, ``0-3,6``), each
    ``cpuN/online`` holds 0 or 1, and a cluster whose cores are all offline has an inactive
    cpufreq policy: its files cannot be read (a phone answers "Device or resource busy"; here
    they are empty, which reads as unreadable too) until a core of it is back online. cpu0
    cannot be hot-plugged on Android; the taskset stand-in honours the online list."""
    off = set(offline)
    if not off <= set(range(1, NUM_CPUS)):
        raise ValueError(f"only cores 1-{NUM_CPUS - 1} can go offline, got {sorted(off)}")
    cpu = root / "sys/devices/system/cpu"
    _write(cpu / "online", cpu_list_text(set(range(NUM_CPUS)) - off) + "\n", overwrite=True)
    for cluster in CLUSTERS:
        cpus = cluster["cpus"]
        assert isinstance(cpus, tuple)
        inactive = off.issuperset(cpus)
        for n in cpus:
            _write(cpu / f"cpu{n}" / "online", "0\n" if n in off else "1\n", overwrite=True)
            freq = cpu / f"cpu{n}" / "cpufreq"
            for name, key in _FREQ_FILES:
                path = freq / name
                if inactive:
                    _write(path, "", overwrite=True)
                elif not path.read_text().strip():  # the policy came back: its values too
                    _write(path, f"{cluster[key]}\n", overwrite=True)


def write_props(root: Path, props: Mapping[str, str]) -> None:
    """(Re)write ``/system/build.prop``, which the ``getprop`` stand-in reads."""
    target = root / "system/build.prop"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(".build.prop.tmp")
    tmp.write_text(build_prop_text(props))
    os.replace(tmp, target)


GETPROP = r"""#!/bin/sh
# getprop stand-in of the emulated phone: reads @PROPS@ (key=value lines).
# No argument: every property as [key]: [value]; KEY [DEFAULT]: the value (or DEFAULT).
props=@PROPS@
if [ $# -eq 0 ]; then
    while IFS= read -r line; do
        case $line in ''|'#'*) continue ;; esac
        printf '[%s]: [%s]\n' "${line%%=*}" "${line#*=}"
    done < "$props"
    exit 0
fi
while IFS= read -r line; do
    case $line in "$1="*) printf '%s\n' "${line#*=}"; exit 0 ;; esac
done < "$props"
printf '%s\n' "${2-}"
"""

TASKSET = r"""#!/bin/sh
# taskset stand-in (toybox syntax) for an 8-CPU phone: checks the mask, pins nothing.
#   taskset [-a] MASK CMD [ARGS...]   run CMD
#   taskset -p [-a] [MASK] PID        show (and pretend to set) PID's mask
# As the kernel's sched_setaffinity: a mask without any online core (see
# /sys/devices/system/cpu/online) fails with "Invalid argument"; one with some online cores
# succeeds (the process then runs on those only).
ncpus=8
all=$(( (1 << ncpus) - 1 ))
online_file="${ANDROID_ROOT_SANDBOX-}/sys/devices/system/cpu/online"
mask_value() {
    case $1 in ''|*[!0-9a-fA-FxX]*) return 1 ;; esac
    m=${1#0x}; m=${m#0X}
    case $m in ''|*[!0-9a-fA-F]*) return 1 ;; esac
    [ ${#m} -le 8 ] || return 1
    echo $(( 0x$m ))
}
online_mask() {
    list=''
    if [ -r "$online_file" ]; then IFS= read -r list < "$online_file" || true; fi
    if [ -z "$list" ]; then echo "$all"; return; fi
    om=0
    old_ifs=$IFS; IFS=,
    for item in $list; do
        lo=${item%-*}; hi=${item#*-}
        case $lo$hi in ''|*[!0-9]*) continue ;; esac
        while [ "$lo" -le "$hi" ]; do om=$(( om | (1 << lo) )); lo=$((lo + 1)); done
    done
    IFS=$old_ifs
    echo $(( om & all ))
}
check_mask() {
    v=$(mask_value "$1") || { echo "taskset: bad mask '$1'" >&2; exit 1; }
    if [ $(( v & $(online_mask) )) -eq 0 ]; then
        echo "taskset: failed to set pid $$'s affinity: Invalid argument" >&2
        exit 1
    fi
}
pid_mode=0
while [ $# -gt 0 ]; do
    case $1 in
        -p) pid_mode=1; shift ;;
        -a) shift ;;
        -ap|-pa) pid_mode=1; shift ;;
        --) shift; break ;;
        *) break ;;
    esac
done
if [ $pid_mode -eq 1 ]; then
    if [ $# -eq 1 ]; then
        printf "pid %s's affinity mask: %x\n" "$1" "$all"
    elif [ $# -eq 2 ]; then
        check_mask "$1"
        printf "pid %s's affinity mask: %x\n" "$2" "$(mask_value "$1")"
    else
        echo "usage: taskset [-ap] [mask] [PID | cmd [args...]]" >&2
        exit 1
    fi
    exit 0
fi
if [ $# -lt 2 ]; then
    echo "usage: taskset [-ap] [mask] [PID | cmd [args...]]" >&2
    exit 1
fi
check_mask "$1"
shift
exec "$@"
"""

NPROC = f"""#!/bin/sh
# nproc stand-in: the emulated phone has {NUM_CPUS} CPUs (the host may have fewer).
echo {NUM_CPUS}
"""


class Sandbox:
    """Maps device paths into ``root`` with chroot semantics (``..`` stops at ``/``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(os.path.realpath(root))

    def resolve(self, device_path: str, *, follow_last: bool = True) -> tuple[str, Path]:
        """Return the canonical device path and the host path of ``device_path``.

        Symlinks are followed inside the sandbox (absolute targets start again at the sandbox's
        ``/``), so nothing resolves outside ``root``; if a host path still ends up outside (a
        bind mount or a race), ``PermissionError`` is raised.
        """
        pending = [p for p in device_path.split("/") if p not in ("", ".")]
        done: list[str] = []
        links = 0
        while pending:
            name = pending.pop(0)
            if name == "..":
                if done:
                    done.pop()
                continue
            candidate = self.root.joinpath(*done, name)
            if (pending or follow_last) and candidate.is_symlink():
                links += 1
                if links > MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), device_path)
                target = os.readlink(candidate)
                if target.startswith("/"):
                    done = []
                pending = [p for p in target.split("/") if p not in ("", ".")] + pending
                continue
            done.append(name)
        host = self.root.joinpath(*done)
        parent = os.path.realpath(host.parent if done else host)
        if os.path.commonpath([parent, str(self.root)]) != str(self.root):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), device_path)
        return "/" + "/".join(done), host

    def host_path(self, device_path: str) -> Path:
        return self.resolve(device_path)[1]

    @staticmethod
    def check_writable(canonical: str) -> None:
        """Writes go to ``/data/local/tmp`` and ``/sdcard`` only, as for adb's shell user."""
        for top in WRITABLE_DIRS:
            if canonical == top or canonical.startswith(top + "/"):
                return
        code = errno.EACCES if canonical == "/data" or canonical.startswith("/data/") else (
            errno.EROFS
        )
        raise OSError(code, os.strerror(code), canonical)
