"""How the emulated phone runs a command: :func:`make_runner` picks a :class:`NamespaceRunner`
(the device's own user, mount and PID namespaces, device paths are real paths) or, where
namespaces cannot be created, a :class:`RewriteRunner` (device paths rewritten in the command
text). :mod:`.sandbox` describes both modes and their limits."""

from __future__ import annotations

import logging
import os
import re
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from .sandbox import DEVICE_TMP, PROC_OVERLAYS, RESERVED_TOP

__all__ = [
    "CommandRunner",
    "NamespaceError",
    "NamespaceRunner",
    "RewriteRunner",
    "base_env",
    "link_host_dirs",
    "make_runner",
]

log = logging.getLogger(__name__)


def base_env(term: str | None, path_prefix: str, sandbox_var: str) -> dict[str, str]:
    """The environment of a device command (none of the test process's variables leak)."""
    return {
        "PATH": f"{path_prefix}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/",
        "TMPDIR": DEVICE_TMP,
        "ANDROID_ROOT": "/system",
        "ANDROID_DATA": "/data",
        "EXTERNAL_STORAGE": "/sdcard",
        "USER": "shell",
        "LOGNAME": "shell",
        "HOSTNAME": "localhost",
        "TERM": term or "dumb",
        "ANDROID_ROOT_SANDBOX": sandbox_var,
    }


class CommandRunner:
    """How to start a device command: ``argv``, ``env`` and ``cwd`` for ``subprocess.Popen``."""

    mode = "base"

    def argv(self, command: str) -> list[str]:
        raise NotImplementedError

    def env(self, term: str | None) -> dict[str, str]:
        raise NotImplementedError

    @property
    def cwd(self) -> str | None:
        return None

    def close(self) -> None:
        """Release what the runner holds (the namespace holder)."""


class RewriteRunner(CommandRunner):
    """Runs on the host, rewriting absolute device paths in the command text."""

    mode = "rewrite"

    def __init__(self, root: Path) -> None:
        self.root = Path(os.path.realpath(root))
        if re.search(r"[^\w./+-]", str(self.root)):
            raise ValueError(f"rewrite mode needs a sandbox path without shell syntax: {root}")
        tops = sorted(
            (p.name for p in self.root.iterdir() if p.is_dir() and p.name not in RESERVED_TOP),
            key=len, reverse=True,
        )
        alternatives = [re.escape(t) + r"(?=/|\b|$)" for t in tops]
        alternatives += [f"proc/{name}" + r"\b" for name in PROC_OVERLAYS]
        self._pattern = re.compile(r"(?<![\w.~/-])/(?:" + "|".join(alternatives) + ")")

    def rewrite(self, command: str) -> str:
        return self._pattern.sub(lambda m: str(self.root) + m.group(0), command)

    def argv(self, command: str) -> list[str]:
        if not command:
            return ["/bin/sh", "-"]  # an interactive shell reading stdin, like adbd's
        return ["/bin/sh", "-c", self.rewrite(command)]

    def env(self, term: str | None) -> dict[str, str]:
        return base_env(term, f"{self.root}/system/bin", str(self.root))

    @property
    def cwd(self) -> str | None:
        return str(self.root / DEVICE_TMP.lstrip("/"))


_SETUP = r"""
set -eu
NR=$1
SB=$2
mount -t tmpfs -o mode=0755,size=1m devroot "$NR"
for d in usr etc bin sbin lib lib32 lib64 libx32; do
    if [ -L "/$d" ]; then
        ln -s "$(readlink "/$d")" "$NR/$d"
    elif [ -d "/$d" ]; then
        mkdir "$NR/$d"
        mount --rbind "/$d" "$NR/$d"
        mount -o remount,bind,ro "$NR/$d"
    fi
done
mkdir "$NR/dev"
mount --rbind /dev "$NR/dev"
mkdir "$NR/proc"
mount -t proc proc "$NR/proc"
for f in cpuinfo meminfo; do
    if [ -f "$SB/proc/$f" ]; then
        mount --bind "$SB/proc/$f" "$NR/proc/$f"
        mount -o remount,bind,ro "$NR/proc/$f"
    fi
done
for top in "$SB"/*; do
    name=${top##*/}
    case $name in usr|etc|bin|sbin|lib|lib32|lib64|libx32|dev|proc|tmp) continue ;; esac
    [ -d "$top" ] && [ ! -L "$top" ] || continue
    mkdir "$NR/$name"
    mount --rbind "$top" "$NR/$name"
    mount -o remount,bind,ro "$NR/$name"
done
for w in data/local/tmp sdcard; do
    if [ -d "$SB/$w" ]; then
        mount --bind "$SB/$w" "$NR/$w"
    fi
done
shift 2
while [ $# -ge 2 ]; do
    mkdir -p "$NR/$1"
    mount --rbind "$2" "$NR/$1"
    mount -o remount,bind,ro "$NR/$1"
    shift 2
done
mount -o remount,bind,ro "$NR"
cd "$NR"
exec chroot . /bin/sh -c 'cd /data/local/tmp && echo ready && exec cat >/dev/null'
"""


class NamespaceError(RuntimeError):
    """The namespace holder could not be started (no privileges, no unshare...)."""


class NamespaceRunner(CommandRunner):
    """Runs commands inside the device's own user/mount/PID namespaces (see module doc)."""

    mode = "namespace"

    def __init__(
        self, root: Path, start_timeout: float = 10.0,
        host_dirs: Mapping[str, Path] | None = None,
    ) -> None:
        self.root = Path(os.path.realpath(root))
        binds = [a for dev, host in (host_dirs or {}).items() for a in (dev.strip("/"), str(host))]
        unshare, nsenter = shutil.which("unshare"), shutil.which("nsenter")
        if not unshare or not nsenter:
            raise NamespaceError("unshare/nsenter (util-linux) not found")
        self._nsenter = nsenter
        self._newroot = tempfile.mkdtemp(prefix="adb-emulator-root-")
        self._holder: subprocess.Popen[bytes] | None = subprocess.Popen(
            [unshare, "--user", "--map-root-user", "--mount", "--propagation", "private",
             "--pid", "--fork", "--kill-child", "/bin/sh", "-c", _SETUP, "setup",
             self._newroot, str(self.root), *binds],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, start_new_session=True,
        )
        try:
            self._wait_ready(start_timeout)
            self._pid = self._find_init()
        except BaseException:
            self.close()
            raise

    def _wait_ready(self, timeout: float) -> None:
        holder = self._holder
        assert holder is not None and holder.stdout is not None
        deadline = time.monotonic() + timeout
        line = b""
        while time.monotonic() < deadline and not line.endswith(b"\n"):
            ready, _, _ = select.select([holder.stdout], [], [], 0.1)
            if ready:
                chunk = os.read(holder.stdout.fileno(), 64)
                if not chunk:
                    break
                line += chunk
        if line.strip() != b"ready":
            holder.kill()
            _, err = holder.communicate(timeout=5)
            raise NamespaceError(
                "namespace setup failed: " + (err.decode(errors="replace").strip() or "timeout")
            )

    def _find_init(self) -> int:
        holder = self._holder
        assert holder is not None
        children = Path(f"/proc/{holder.pid}/task/{holder.pid}/children")
        try:
            pids = children.read_text().split()
        except OSError:
            pids = []
        if len(pids) != 1:
            raise NamespaceError(f"cannot find the namespace's init process ({pids})")
        return int(pids[0])

    def argv(self, command: str) -> list[str]:
        enter = [
            self._nsenter, f"--target={self._pid}", "--user", "--mount", "--pid", "--root",
            "--wd", "--",
        ]
        return [*enter, "/bin/sh", "-"] if not command else [*enter, "/bin/sh", "-c", command]

    def env(self, term: str | None) -> dict[str, str]:
        return base_env(term, "/system/bin", "")

    def close(self) -> None:
        holder, self._holder = self._holder, None
        if holder is not None:
            if holder.poll() is None:
                holder.kill()  # --kill-child takes the namespace's init (and all) down with it
            try:
                holder.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.rmdir(self._newroot)
        except OSError:
            pass


def link_host_dirs(root: Path, host_dirs: Mapping[str, Path]) -> None:
    """Rewrite mode's stand-in for the namespace's read-only binds: symlinks in the sandbox."""
    for dev, host in host_dirs.items():
        link = Path(root) / dev.strip("/")
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            link.symlink_to(Path(host).resolve(), target_is_directory=True)


def make_runner(
    root: Path, mapping: str = "auto", host_dirs: Mapping[str, Path] | None = None
) -> CommandRunner:
    """``mapping``: ``"namespace"``, ``"rewrite"`` or ``"auto"`` (namespace, else rewrite).

    ``host_dirs`` maps device folders (e.g. ``"opt/python"``, under a top-level folder the
    sandbox does not have) to host folders that commands see read-only: a bind mount in
    namespace mode, a symlink in the sandbox in rewrite mode. Tests use it to give the device
    a Python runtime for the stand-in ``benchmark_model``.
    """
    if mapping not in ("auto", "namespace", "rewrite"):
        raise ValueError(f"unknown mapping {mapping!r}")
    if mapping == "rewrite":
        link_host_dirs(root, host_dirs or {})
        return RewriteRunner(root)
    try:
        return NamespaceRunner(root, host_dirs=host_dirs)
    except NamespaceError as exc:
        if mapping == "namespace":
            raise
        log.warning("emulated device falls back to path rewriting: %s", exc)
        link_host_dirs(root, host_dirs or {})
        return RewriteRunner(root)
