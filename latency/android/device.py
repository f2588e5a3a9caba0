"""A phone over adb: the one class through which donnav2 talks to Android devices.

:class:`AndroidDevice` wraps adbutils' connection to the adb server and never leaves three
rules: every request targets the device's serial (``host:tport:serial:SERIAL``), every request
has a timeout (no answer within :attr:`AdbConfig.io_timeout_s` is a frozen phone; a running
benchmark may stay silent for :attr:`AdbConfig.run_timeout_s` more), and every argument that
reaches the phone's shell is quoted (:func:`shlex.quote`). Commands run with the shell
protocol v2, so their exit status is known; a stream that ends without one is a lost
connection. Files move with adb's sync protocol, implemented here on adbutils' transport so
that it has timeouts and reports the phone's own refusal message ("No space left on device").

On the phone everything lives in one work folder under ``/data/local/tmp`` (default
``/data/local/tmp/donnav2``)::

    models/SHA16/NAME.tflite       each model once per content hash (kept between runs)
    bin/SHA16/benchmark_model      the benchmark binary, once per content hash
    scripts/SHA16/NAME.sh          device_scripts/*.sh, once per content hash
    results/SESSION/N.txt          benchmark reports of this session (removed on close())

(``SHA16``: the first 16 hex digits of the file's sha256.) The work folder and the other
settings are an :class:`latency.android.config.AdbConfig`.

No path outside the work folder is ever written: remote paths are built by :meth:`_remote`,
which refuses names that would leave it.

This module only moves bytes and runs commands. Timing models with ``benchmark_model`` (the
phone as a latency :class:`latency.devices.Device`) is :class:`latency.android.measure.
PhoneBenchmark`, which drives an :class:`AndroidDevice`; nothing here imports it.
"""

from __future__ import annotations

import os
import posixpath
import shlex
import stat as stat_mod
import struct
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from latency.android.config import AdbConfig, check_work_dir
from latency.android.cores import ONLINE_PATH, PRESENT_PATH, check_pinning, parse_cpu_list
from latency.android.errors import (
    AdbError,
    DeviceCommandError,
    DeviceDisconnectedError,
    DeviceSelectionError,
    DeviceTimeoutError,
    PushError,
    RemotePathError,
)
from latency.android.phones import (
    KNOWN_PROFILES,
    DeviceProfile,
    profile_for,
    watched_zone_types,
)
from latency.android.run_report import DeviceInfo, parse_device_info
from nas.core.files import file_sha256

__all__ = ["AndroidDevice", "ShellResult", "attached_serials", "select_serial"]

SYNC_CHUNK = 64 * 1024
_SHELL_STDOUT, _SHELL_STDERR, _SHELL_EXIT = 1, 2, 3


@dataclass(frozen=True)
class ShellResult:
    """What a command on the phone gave: its exit status and its output, decoded."""

    exit_code: int
    stdout: str
    stderr: str


def _client() -> Any:
    import adbutils

    return adbutils.AdbClient()  # host/port from ANDROID_ADB_SERVER_HOST/_PORT


def attached_serials() -> list[str]:
    """Serials of the phones the adb server sees as online (``adb devices``: ``device``)."""
    try:
        return [d.serial for d in _client().device_list()]
    except Exception as exc:  # adbutils raises its own errors and OSError subclasses
        raise AdbError(
            f"cannot reach the adb server ({type(exc).__name__}: {exc}); install Android's "
            "platform-tools (or Debian's `adb`) and run `adb start-server`"
        ) from None


def select_serial(requested: str | None) -> str:
    """The serial to use: ``requested``, or the one attached phone when it is None."""
    serials = attached_serials()
    if requested is not None:
        if requested not in serials:
            raise DeviceSelectionError(
                f"no phone {requested!r} is attached and online; attached: "
                f"{', '.join(serials) or 'none'}. Check `adb devices` (authorise the computer "
                "on the phone, or `adb connect HOST:PORT`)"
            )
        return requested
    if not serials:
        raise DeviceSelectionError(
            "no phone is attached: connect one with USB debugging on (check `adb devices`)"
        )
    if len(serials) > 1:
        raise DeviceSelectionError(
            f"{len(serials)} phones are attached ({', '.join(serials)}); say which with "
            "--device SERIAL (several --device options profile them in parallel)"
        )
    return serials[0]


class AndroidDevice:
    """One phone, by serial. Use as a context manager (or call :meth:`close`)."""

    def __init__(self, serial: str, adb: AdbConfig | None = None) -> None:
        self.serial = serial
        self.adb = adb or AdbConfig()
        self.work = check_work_dir(self.adb.work_dir)
        self.session = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._device: Any = None
        self._info: DeviceInfo | None = None
        self._profile: DeviceProfile | None = None
        self._pushed: dict[str, str] = {}  # local sha256 -> remote path
        self._folders_ready = False
        self._results = 0  # result files handed out in this session

    # ---- context -----------------------------------------------------------------------------
    def __enter__(self) -> AndroidDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Remove this session's results from the phone (best effort: the phone may be gone).
        Models and the binary stay in the work folder so the next run does not push them."""
        if not self._folders_ready:
            return
        self._folders_ready = False
        try:
            self.shell(["rm", "-rf", "--", self._remote("results", self.session)])
        except (DeviceDisconnectedError, DeviceTimeoutError, DeviceCommandError, AdbError):
            pass

    def purge(self) -> None:
        """Remove the whole work folder from the phone."""
        self.shell(["rm", "-rf", "--", self.work], check=True)
        self._pushed.clear()
        self._folders_ready = False

    # ---- paths -------------------------------------------------------------------------------
    def _remote(self, *parts: str) -> str:
        """A path inside the work folder; refuses parts that would leave it."""
        for part in parts:
            if part in ("", ".", "..") or "/" in part or "\n" in part or "\0" in part:
                raise RemotePathError(
                    f"{part!r} cannot be a file name on the phone (it would leave the work "
                    "folder or break the report format); rename the file"
                )
        return posixpath.join(self.work, *parts)

    # ---- transport ---------------------------------------------------------------------------
    def _adb_device(self) -> Any:
        if self._device is None:
            self._device = _client().device(serial=self.serial)
        return self._device

    @contextmanager
    def _errors(self, what: str, timeout: float) -> Iterator[None]:
        """adbutils/socket failures -> our errors, each saying what happened and what to do."""
        from adbutils.errors import AdbError as AdbutilsError
        from adbutils.errors import AdbTimeout

        try:
            yield
        except (AdbTimeout, TimeoutError) as exc:
            raise DeviceTimeoutError(
                f"phone {self.serial} did not answer within {timeout:g} s while {what} "
                f"({exc or 'timeout'}); it may be frozen or asleep: unlock it, check "
                "`adb devices`, then run the same command again to resume"
            ) from None
        except (EOFError, ConnectionError, BrokenPipeError) as exc:
            raise self._lost(what, exc) from None
        except AdbutilsError as exc:
            text = str(exc)
            if any(k in text for k in ("offline", "not found", "closed", "no devices")):
                raise self._lost(what, exc) from None
            raise AdbError(f"adb refused {what} on {self.serial}: {text}") from None
        except OSError as exc:
            raise self._lost(what, exc) from None

    def _lost(self, what: str, exc: BaseException) -> DeviceDisconnectedError:
        return DeviceDisconnectedError(
            f"lost the connection to phone {self.serial} while {what} "
            f"({type(exc).__name__}: {exc or 'connection closed'}); reconnect it (check "
            "`adb devices`), then run the same command again: finished work is kept and "
            "the run resumes"
        )

    def _open(self, service: str, timeout: float) -> Any:
        """A transport to ``service`` on this serial, opened within ``timeout`` seconds."""
        conn = self._adb_device().open_transport(timeout=timeout)
        try:
            conn.send_command(service)
            conn.check_okay()
        except BaseException:
            conn.close()
            raise
        return conn

    # ---- shell -------------------------------------------------------------------------------
    def shell(
        self,
        argv: Sequence[str],
        *,
        check: bool = False,
        idle_timeout: float | None = None,
        on_stdout: Callable[[str], None] | None = None,
        what: str | None = None,
    ) -> ShellResult:
        """Run ``argv`` (each element quoted) on the phone with shell protocol v2.

        ``idle_timeout`` (default ``io_timeout_s``) bounds every wait for output; opening the
        command is bounded by ``io_timeout_s``. ``check`` raises on a non-zero exit status.
        """
        command = " ".join(shlex.quote(str(a)) for a in argv)
        what = what or f"running `{command[:80]}`"
        io = self.adb.io_timeout_s
        idle = idle_timeout or io
        out, err = bytearray(), bytearray()
        exit_code: int | None = None
        with self._errors(what, io):
            conn = self._open(f"shell,v2,raw:{command}", io)
        try:
            with self._errors(what, idle):
                conn.conn.settimeout(idle)
                pending = b""
                while exit_code is None:
                    header = conn.read_exact(5)
                    kind, length = header[0], struct.unpack("<I", header[1:5])[0]
                    data = conn.read_exact(length) if length else b""
                    if kind == _SHELL_STDOUT:
                        out += data
                        if on_stdout is not None:
                            pending += data
                            *lines, pending = pending.split(b"\n")
                            for line in lines:
                                on_stdout(line.decode(errors="replace"))
                    elif kind == _SHELL_STDERR:
                        err += data
                    elif kind == _SHELL_EXIT:
                        exit_code = data[0] if data else 255
        finally:
            conn.close()
        result = ShellResult(exit_code, out.decode(errors="replace"), err.decode(errors="replace"))
        if check and exit_code != 0:
            raise DeviceCommandError(
                f"{what} on phone {self.serial} failed (exit status {exit_code}): "
                f"{(result.stderr or result.stdout).strip()[-500:] or 'no output'}"
            )
        return result

    # ---- sync (push / pull / stat) -----------------------------------------------------------
    def _sync(self, what: str, timeout: float | None = None) -> Any:
        return self._open("sync:", timeout or self.adb.io_timeout_s)

    @staticmethod
    def _request(conn: Any, sync_id: bytes, payload: bytes) -> None:
        conn.conn.sendall(sync_id + struct.pack("<I", len(payload)) + payload)

    @staticmethod
    def _fail_message(conn: Any) -> str:
        length = struct.unpack("<I", conn.read_exact(4))[0]
        return conn.read_exact(length).decode(errors="replace")

    def stat(self, remote: str) -> tuple[int, int] | None:
        """(mode, size) of a remote path, or None if it does not exist."""
        io = self.adb.io_timeout_s
        with self._errors(f"checking {remote}", io):
            conn = self._sync("stat")
            try:
                self._request(conn, b"STAT", remote.encode())
                reply = conn.read_exact(16)
                mode, size, _mtime = struct.unpack("<III", reply[4:])
                self._request(conn, b"QUIT", b"")
            finally:
                conn.close()
        return None if mode == 0 else (mode, size)

    def push(self, local: Path, remote: str, mode: int = 0o644) -> None:
        """Copy ``local`` to ``remote`` (inside the work folder); the size is checked after."""
        local = Path(local)
        size = local.stat().st_size
        io = self.adb.io_timeout_s
        what = f"pushing {local.name} to {remote}"
        with self._errors(what, io):
            conn = self._sync("push")
            try:
                conn.conn.settimeout(io)
                self._request(conn, b"SEND", f"{remote},{stat_mod.S_IFREG | mode}".encode())
                with open(local, "rb") as f:
                    for block in iter(lambda: f.read(SYNC_CHUNK), b""):
                        self._request(conn, b"DATA", block)
                conn.conn.sendall(b"DONE" + struct.pack("<I", int(time.time())))
                status = conn.read_exact(4)
                if status == b"FAIL":
                    message = self._fail_message(conn)
                    raise PushError(
                        f"phone {self.serial} refused {what}: {message}. Free space on the "
                        f"phone (`adb shell df /data`) or check that {self.work} is writable "
                        "by adb's shell user; then run the same command again to resume"
                    )
                if status != b"OKAY":
                    raise AdbError(f"unexpected sync reply {status!r} while {what}")
                self._request(conn, b"QUIT", b"")
            finally:
                conn.close()
        st = self.stat(remote)
        if st is None or st[1] != size:
            raise PushError(
                f"{what}: the phone has {st[1] if st else 'no'} bytes of {size}; the storage "
                "may be full (`adb shell df /data`); run the same command again to retry"
            )

    def read_file(self, remote: str) -> bytes:
        """The content of a remote file (adb pull into memory)."""
        io = self.adb.io_timeout_s
        what = f"pulling {remote}"
        data = bytearray()
        with self._errors(what, io):
            conn = self._sync("pull")
            try:
                self._request(conn, b"RECV", remote.encode())
                while True:
                    sync_id = conn.read_exact(4)
                    if sync_id == b"DATA":
                        length = struct.unpack("<I", conn.read_exact(4))[0]
                        data += conn.read_exact(length)
                    elif sync_id == b"DONE":
                        conn.read_exact(4)
                        break
                    elif sync_id == b"FAIL":
                        raise DeviceCommandError(
                            f"cannot pull {remote} from phone {self.serial}: "
                            f"{self._fail_message(conn)}"
                        )
                    else:
                        raise AdbError(f"unexpected sync reply {sync_id!r} while {what}")
                self._request(conn, b"QUIT", b"")
            finally:
                conn.close()
        return bytes(data)

    def pull(self, remote: str, local: Path) -> Path:
        """Copy a remote file to ``local``."""
        local = Path(local)
        local.write_bytes(self.read_file(remote))
        return local

    # ---- work folder -------------------------------------------------------------------------
    def _ensure_folders(self) -> None:
        if self._folders_ready:
            return
        folders = [self._remote(d) for d in ("models", "bin", "scripts")]
        results = self._remote("results", self.session)
        self.shell(["mkdir", "-p", "--", *folders, results], check=True,
                   what=f"creating the work folder {self.work}")
        self._folders_ready = True

    def new_result_file(self) -> str:
        """A fresh path in this session's results folder (``results/SESSION/N.txt``; the
        folder is created here and removed by :meth:`close`)."""
        self._ensure_folders()
        self._results += 1
        return self._remote("results", self.session, f"{self._results}.txt")

    def push_once(self, local: Path, folder: str, name: str, mode: int = 0o644) -> str:
        """Push ``local`` to ``folder/SHA/name`` unless a file of that content is there."""
        local = Path(local)
        digest = file_sha256(local)
        remote = self._pushed.get(digest)
        if remote is not None:
            return remote
        self._ensure_folders()
        remote_dir = self._remote(folder, digest[:16])
        remote = self._remote(folder, digest[:16], name)
        size = local.stat().st_size
        existing = self.stat(remote)
        if existing is None or existing[1] != size:
            self.shell(["mkdir", "-p", "--", remote_dir], check=True)
            self.push(local, remote, mode)
        self._pushed[digest] = remote
        return remote

    def push_model(self, model: Path) -> str:
        """The model's path on the phone, pushed once per content hash."""
        return self.push_once(Path(model), "models", Path(model).name)

    def push_script(self, name: str) -> str:
        """A ``device_scripts/NAME`` script's path on the phone (pushed once per content)."""
        path = Path(str(resources.files("device_scripts") / name))
        if not path.is_file():
            raise DeviceCommandError(f"device script {name} is missing from the installation")
        return self.push_once(path, "scripts", name)

    def run_script(
        self,
        name: str,
        args: Sequence[str] = (),
        *,
        idle_timeout: float | None = None,
        on_stdout: Callable[[str], None] | None = None,
    ) -> ShellResult:
        """Run ``device_scripts/NAME`` with ``sh`` on the phone (arguments quoted)."""
        remote = self.push_script(name)
        return self.shell(
            ["sh", remote, *args], idle_timeout=idle_timeout, on_stdout=on_stdout,
            what=f"running {name}",
        )

    # ---- facts -------------------------------------------------------------------------------
    def info(self) -> DeviceInfo:
        """Properties, CPU frequencies and governors, thermal zones (read once)."""
        if self._info is None:
            res = self.run_script("device_info.sh")
            if res.exit_code != 0:
                raise DeviceCommandError(
                    f"device_info.sh failed on phone {self.serial} (exit {res.exit_code}): "
                    f"{(res.stderr or res.stdout).strip()[-500:]}"
                )
            self._info = parse_device_info(res.stdout)
        return self._info

    def profile(self) -> DeviceProfile:
        """The phone's measurement profile (big cores, mask, zones, temperatures); with
        ``AdbConfig.cores`` (``--cores``) its big cores are those."""
        if self._profile is None:
            info = self.info()
            prof = profile_for(info.props, info.max_freqs_khz)
            if self.adb.cores is not None:
                prof = replace(prof, big_cores=self.adb.cores)
            self._profile = prof
        return self._profile

    def cpu_list(self, path: str) -> tuple[int, ...] | None:
        """A kernel CPU list file (``/sys/devices/system/cpu/online``...), read now; ``None``
        when the phone does not have it."""
        res = self.shell(["cat", path], what=f"reading {path}")
        return parse_cpu_list(res.stdout, path) if res.exit_code == 0 else None

    def online_cores(self) -> tuple[int, ...] | None:
        """The cores online now (read afresh: phones hot-plug cores off), or ``None``."""
        return self.cpu_list(ONLINE_PATH)

    def check_cores(self) -> tuple[int, ...]:
        """The cores to pin to, once every one is online; else :class:`CoresOfflineError`
        names the offline ones and what to do (see :mod:`latency.android.cores`)."""
        prof, chosen = self.profile(), self.adb.cores is not None
        online = self.online_cores()
        generic = not chosen and prof.name not in {p.name for p in KNOWN_PROFILES}
        present = self.cpu_list(PRESENT_PATH) if chosen or generic else None
        check_pinning(
            self.serial, prof.big_cores, online, present=present, chosen=chosen,
            freq_known=self.info().max_freqs_khz if generic else None,
        )  # fmt: skip
        return prof.big_cores

    def abilist(self) -> list[str]:
        """The ABIs the phone runs (``ro.product.cpu.abilist``, else ``ro.product.cpu.abi``)."""
        props = self.info().props
        listed = props.get("ro.product.cpu.abilist", "")
        return [a for a in listed.split(",") if a] or [props.get("ro.product.cpu.abi", "")]

    def watched_zones(self) -> tuple[str, ...]:
        """The thermal zones the profile watches that this phone has."""
        return watched_zone_types(self.profile(), self.info().temps_c)
