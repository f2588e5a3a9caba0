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

    models/SHA16/NAME.tflite   each model once per content hash (kept between runs)
    bin/benchmark_model-SHA12  the benchmark binary, once per content hash
    scripts/NAME-SHA12.sh      device_scripts/*.sh, once per content hash
    results/SESSION/N.txt      benchmark reports of this session (removed on close())

No path outside the work folder is ever written: remote paths are built by :meth:`_remote`,
which refuses names that would leave it.

The device is also a latency :class:`latency.devices.Device`: :meth:`measure` times models
with ``benchmark_model`` (see :mod:`latency.android.measure`).
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import shlex
import stat as stat_mod
import struct
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from latency.android.binary import BenchmarkBinary, check_abi, find_benchmark_binary
from latency.android.errors import (
    AdbError,
    BenchmarkBinaryError,
    DeviceCommandError,
    DeviceDisconnectedError,
    DeviceSelectionError,
    DeviceTimeoutError,
    PushError,
)
from latency.android.phones import DeviceProfile, profile_for, watched_zone_types
from latency.android.run_report import DeviceInfo, ModelReport, parse_device_info, parse_run_report
from latency.host import MeasureConfig
from nas.core.files import file_sha256

__all__ = ["WORK_ROOT", "AdbConfig", "AndroidDevice", "ShellResult", "attached_serials"]

WORK_ROOT = "/data/local/tmp"
SYNC_CHUNK = 64 * 1024
_SHELL_STDOUT, _SHELL_STDERR, _SHELL_EXIT = 1, 2, 3


@dataclass(frozen=True)
class AdbConfig:
    """How to talk to phones. Defaults are defined here only (the CLI reads them)."""

    io_timeout_s: float = 30.0
    """Longest wait for any answer of the phone (a frozen phone fails after this)."""
    run_timeout_s: float = 300.0
    """Longest benchmark_model run; the phone kills it after this, the host waits this long
    (plus io_timeout_s) for the next sign of life while a model runs."""
    cooldown_s: float = 5.0
    """Sleep on the phone between two models."""
    gate_timeout_s: float = 180.0
    """Longest wait for the thermal gate (watched zones at or below the profile's cooldown
    temperature) before a model; a model started hot is flagged throttled."""
    min_secs: float = 0.5
    """benchmark_model --min_secs and --warmup_min_secs (each phase runs at least this long)."""
    work_dir: str = f"{WORK_ROOT}/donnav2"
    binary: Path | None = None
    """benchmark_model to push (default: found in the cache folder, see binary.py)."""
    binary_dir: Path | None = None
    max_failures: int = 3
    """Stop after this many models failed in a row before any succeeded (a broken binary)."""
    throttle_retries: int = 1
    """Re-runs of a model whose runs were throttled (after a cooldown) before flagging it."""

    def __post_init__(self) -> None:
        if min(self.io_timeout_s, self.run_timeout_s) <= 0 or self.cooldown_s < 0:
            raise ValueError("adb timeouts must be > 0 and the cooldown >= 0")
        check_work_dir(self.work_dir)


@dataclass(frozen=True)
class ShellResult:
    exit_code: int
    stdout: str
    stderr: str


def check_work_dir(work_dir: str) -> str:
    """The work folder, normalised; it must be a folder under /data/local/tmp."""
    norm = posixpath.normpath(work_dir)
    if (
        not work_dir.startswith("/")
        or norm != work_dir.rstrip("/")
        or not norm.startswith(WORK_ROOT + "/")
        or any(c in work_dir for c in "\n\0")
    ):
        raise ValueError(
            f"the phone work folder must be a normalised path inside {WORK_ROOT}/ (no '..', "
            f"no line breaks), got {work_dir!r}"
        )
    return norm


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

    def __init__(
        self,
        serial: str,
        measure: MeasureConfig | None = None,
        adb: AdbConfig | None = None,
    ) -> None:
        self.serial = serial
        self.name = serial
        self.config = measure or MeasureConfig()
        self.adb = adb or AdbConfig()
        self.work = check_work_dir(self.adb.work_dir)
        self.session = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._device: Any = None
        self._info: DeviceInfo | None = None
        self._profile: DeviceProfile | None = None
        self._binary: BenchmarkBinary | None = None
        self._pushed: dict[str, str] = {}  # local sha256 -> remote path
        self._folders_ready = False
        self._reports = 0

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
                raise ValueError(
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
        if self._profile is None:
            info = self.info()
            self._profile = profile_for(info.props, info.max_freqs_khz)
        return self._profile

    def abilist(self) -> list[str]:
        props = self.info().props
        listed = props.get("ro.product.cpu.abilist", "")
        return [a for a in listed.split(",") if a] or [props.get("ro.product.cpu.abi", "")]

    def watched_zones(self) -> tuple[str, ...]:
        return watched_zone_types(self.profile(), self.info().temps_c)

    def fingerprint(self) -> dict[str, Any]:
        info, prof = self.info(), self.profile()
        p = info.props
        ident = {
            "kind": "android",
            "model": p.get("ro.product.model", ""),
            "board": p.get("ro.product.board") or p.get("ro.board.platform", ""),
            "build_fingerprint": p.get("ro.build.fingerprint", ""),
            "abi": p.get("ro.product.cpu.abi", ""),
        }
        dev_id = "android-" + hashlib.sha256(repr(sorted(ident.items())).encode()).hexdigest()[
            :12
        ]
        return {
            "id": dev_id,
            **ident,
            "serial": self.serial,
            "manufacturer": p.get("ro.product.manufacturer", ""),
            "soc": prof.soc,
            "platform": p.get("ro.board.platform", ""),
            "hardware": p.get("ro.hardware", ""),
            "android": p.get("ro.build.version.release", ""),
            "sdk": p.get("ro.build.version.sdk", ""),
            "abilist": self.abilist(),
            "profile": prof.name,
            "big_cores": list(prof.big_cores),
            "taskset_mask": prof.mask,
            "cpu_max_freq_khz": {str(c): f for c, f in sorted(info.max_freqs_khz.items())},
            "cpu_governors": {str(c): g for c, g in sorted(info.governors.items())},
            "thermal_zones": sorted(info.temps_c),
            "watched_zones": list(self.watched_zones()),
        }

    # ---- benchmark binary --------------------------------------------------------------------
    def binary(self) -> BenchmarkBinary:
        """The benchmark binary (found, read, ABI-checked against this phone)."""
        if self._binary is None:
            binary = find_benchmark_binary(self.adb.binary, self.adb.binary_dir)
            check_abi(binary.abi, self.abilist(), binary.path)
            self._binary = binary
        return self._binary

    def push_binary(self) -> str:
        binary = self.binary()
        remote = self.push_once(binary.path, "bin", "benchmark_model", mode=0o755)
        return remote

    def runtime(self) -> str:
        b = self.binary()
        return (
            f"TFLite benchmark_model (sha256 {b.short_hash}, {b.abi}) on Android, "
            f"pinned to cores {','.join(map(str, self.profile().big_cores))}"
        )

    def measure_settings(self) -> dict[str, Any]:
        prof = self.profile()
        if self.config.threads > prof.max_threads:
            raise BenchmarkBinaryError(
                f"--threads {self.config.threads} is more than the {prof.max_threads} big "
                f"cores of {prof.name}; use --threads {prof.max_threads} or fewer"
            )
        adb = asdict(self.adb)
        return {
            **asdict(self.config),
            "benchmark_runs": self.config.repeats,
            "num_runs": self.config.invokes,
            "warmup_runs": self.config.warmup,
            "min_secs": adb["min_secs"],
            "cooldown_s": adb["cooldown_s"],
            "gate_temp_c": prof.cooldown_temp_c,
            "max_temp_c": prof.max_temp_c,
            "gate_timeout_s": adb["gate_timeout_s"],
            "taskset_mask": prof.mask,
        }

    # ---- benchmarking ------------------------------------------------------------------------
    def run_benchmark(
        self,
        models: Sequence[str],
        *,
        runs: int,
        cooldown: bool,
        on_progress: Callable[[str], None] | None = None,
    ) -> list[ModelReport]:
        """Run ``run_benchmark.sh`` on already pushed ``models``; the parsed report.

        A report cut short raises :class:`DeviceDisconnectedError`/:class:`DeviceTimeoutError`
        from the transport, or :class:`DeviceCommandError` if the script itself failed.
        """
        prof, cfg, adb = self.profile(), self.config, self.adb
        binary = self.push_binary()
        self._ensure_folders()
        self._reports += 1
        report = self._remote("results", self.session, f"{self._reports}.txt")
        args = [
            "-b", binary, "-o", report, "-m", prof.mask,
            "-k", ",".join(map(str, prof.big_cores)), "-z", ",".join(self.watched_zones()),
            "-t", str(cfg.threads), "-w", str(cfg.warmup), "-n", str(cfg.invokes),
            "-r", str(runs), "-s", f"{adb.min_secs:g}",
            "-c", f"{adb.cooldown_s:g}" if cooldown else "0",
            "-g", str(round(prof.cooldown_temp_c * 1000)), "-G", f"{adb.gate_timeout_s:.0f}",
            "-T", f"{adb.run_timeout_s:.0f}", "--", *models,
        ]
        # silent stretches: one benchmark run, one gate poll, one cooldown
        idle = adb.run_timeout_s + adb.cooldown_s + adb.io_timeout_s
        res = self.run_script("run_benchmark.sh", args, idle_timeout=idle, on_stdout=on_progress)
        if res.exit_code != 0:
            raise DeviceCommandError(
                f"run_benchmark.sh failed on phone {self.serial} (exit {res.exit_code}): "
                f"{(res.stderr or res.stdout).strip()[-500:]}"
            )
        text = self.read_file(report).decode(errors="replace")
        reports, done = parse_run_report(text)
        if not done:
            raise DeviceCommandError(
                f"the benchmark report {report} on phone {self.serial} is incomplete; run the "
                "same command again to resume"
            )
        return reports

    def measure(
        self,
        models: Sequence[tuple[Any, Path]],
        reference: Path,
        baseline_us: float | None = None,
        on_done: Callable[[Any, Any], None] | None = None,
    ) -> dict[Any, Any]:
        """Time every ``(key, path)`` model on the phone (see :mod:`latency.android.measure`)."""
        from latency.android.measure import measure_models

        return measure_models(self, models, Path(reference), baseline_us, on_done)
