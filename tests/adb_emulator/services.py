"""The device-side services behind OPEN: ``shell:``, ``shell,v2,...:``, ``exec:`` and ``sync:``."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import pty
import select
import signal
import stat
import struct
import subprocess
import termios
import threading
import time
import tty
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import protocol as p
from .protocol import StreamClosed
from .sandbox import Sandbox

if TYPE_CHECKING:
    from .device import EmulatedDevice, Stream

Handler = Callable[["EmulatedDevice", "Stream", p.ServiceRequest], None]

READ_CHUNK = 64 * 1024
POLL = 0.1


def service_handler(request: p.ServiceRequest) -> Handler | None:
    """The function that serves ``request`` (run in its own thread), or None if unsupported."""
    return {"shell": run_shell, "exec": run_shell, "sync": run_sync}.get(request.kind)


# -- shell / exec ------------------------------------------------------------------------------


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def run_shell(device: EmulatedDevice, stream: Stream, request: p.ServiceRequest) -> None:
    """Run the command, relay stdin/stdout/stderr (raw bytes or shell v2 packets), then the
    exit code (v2), then close the stream."""
    runner = device.runner
    v2 = request.shell_protocol
    if runner is None:
        stream.close()
        return
    argv, env, cwd = runner.argv(request.command), runner.env(request.term), runner.cwd
    master: int | None = None
    try:
        if request.use_pty:
            master, slave = pty.openpty()
            if request.raw_pty:
                tty.setraw(slave)
            try:
                proc = subprocess.Popen(
                    argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd,
                    start_new_session=True, close_fds=True,
                )
            finally:
                os.close(slave)
            outputs = [(master, p.SHELL_STDOUT)]
            stdin_fd: int | None = master
        else:
            proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=env, cwd=cwd, start_new_session=True, close_fds=True,
            )
            assert proc.stdin and proc.stdout and proc.stderr
            outputs = [
                (proc.stdout.fileno(), p.SHELL_STDOUT), (proc.stderr.fileno(), p.SHELL_STDERR)
            ]
            stdin_fd = proc.stdin.fileno()
    except OSError as exc:
        if master is not None:
            os.close(master)
        with contextlib.suppress(StreamClosed):
            message = f"/system/bin/sh: {exc.strerror}\n".encode()
            stream.write(p.pack_shell_packet(p.SHELL_STDERR, message) if v2 else message)
            if v2:
                stream.write(p.pack_shell_exit(127))
        stream.close()
        return

    def kill() -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)

    stream.add_close_callback(kill)
    deadline = time.monotonic() + device.command_timeout
    finished = threading.Event()

    def pump_output(fd: int, packet_id: int) -> None:
        while not finished.is_set() and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], POLL)
            if not ready:
                continue
            try:
                data = os.read(fd, READ_CHUNK)
            except OSError:  # EIO: the PTY's last slave end was closed
                return
            if not data:
                return
            try:
                stream.write(p.pack_shell_packet(packet_id, data) if v2 else data)
            except StreamClosed:
                kill()
                return

    def pump_input() -> None:
        nonlocal stdin_fd
        parser = p.ShellPacketParser()
        while not finished.is_set():
            try:
                data = stream.read(timeout=POLL)
            except TimeoutError:
                continue
            if data is None:
                return
            try:
                if not v2:
                    if stdin_fd is not None:
                        _write_all(stdin_fd, data)
                    continue
                for packet_id, payload in parser.feed(data):
                    if packet_id == p.SHELL_STDIN and stdin_fd is not None:
                        _write_all(stdin_fd, payload)
                    elif packet_id == p.SHELL_CLOSE_STDIN:
                        if master is not None:
                            _write_all(master, b"\x04")  # a PTY cannot half-close: send ^D
                        elif proc.stdin is not None:
                            proc.stdin.close()
                            stdin_fd = None
                    elif packet_id == p.SHELL_WINDOW_SIZE and master is not None:
                        size = p.parse_window_size(payload)
                        if size is not None:
                            fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", *size))
            except (OSError, ValueError):  # the command closed its stdin or ended
                stdin_fd = None
            except p.ProtocolError:
                kill()
                return

    pumps = [
        threading.Thread(
            target=pump_output, args=out, name=f"adb-emulator-{device.port}-out", daemon=True
        )
        for out in outputs
    ]
    feeder = threading.Thread(
        target=pump_input, name=f"adb-emulator-{device.port}-in", daemon=True
    )
    for thread in (*pumps, feeder):
        thread.start()
    try:
        for thread in pumps:
            thread.join(max(0.0, deadline - time.monotonic()))
        if any(thread.is_alive() for thread in pumps):
            kill()  # command_timeout
        try:
            proc.wait(timeout=max(0.5, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            kill()
            proc.wait(timeout=5)
        finished.set()
        for thread in pumps:
            thread.join(1.0)
        if v2 and not stream.closed.is_set():
            with contextlib.suppress(StreamClosed):
                stream.write(p.pack_shell_exit(_exit_code(proc.returncode)))
    finally:
        finished.set()
        kill()
        feeder.join(1.0)
        stream.close()
        if master is not None:
            os.close(master)
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=1)


# -- sync --------------------------------------------------------------------------------------


class _Reader:
    """Byte-exact reads over a stream whose WRTE payloads split or merge sync requests."""

    def __init__(self, stream: Stream, timeout: float) -> None:
        self._stream = stream
        self._timeout = timeout
        self._buffer = bytearray()

    def read_exact(self, n: int) -> bytes:
        deadline = time.monotonic() + self._timeout
        while len(self._buffer) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("sync request incomplete")
            data = self._stream.read(timeout=remaining)
            if data is None:
                raise EOFError("stream closed")
            self._buffer += data
        out = bytes(self._buffer[:n])
        del self._buffer[:n]
        return out

    def request(self) -> tuple[bytes, int]:
        sync_id, value = p.SYNC_REQUEST.unpack(self.read_exact(p.SYNC_REQUEST.size))
        return sync_id, value

    def discard_until_done(self) -> None:
        """What adbd does after a failed SEND: swallow DATA until DONE."""
        with contextlib.suppress(EOFError, TimeoutError):
            while True:
                sync_id, size = self.request()
                if sync_id != p.ID_DATA or size > p.SYNC_DATA_MAX:
                    return
                self.read_exact(size)


def _strerror(exc: OSError) -> str:
    code = exc.errno or errno.EIO
    return os.strerror(code)


def run_sync(device: EmulatedDevice, stream: Stream, request: p.ServiceRequest) -> None:
    """Serve sync requests until QUIT, an error or the stream's end."""
    sandbox = device.sandbox
    reader = _Reader(stream, device.io_timeout)
    try:
        while sandbox is not None:
            sync_id, length = reader.request()
            if length > p.SYNC_PATH_MAX:
                stream.write(p.pack_sync_fail("path too long"))
                return
            path = reader.read_exact(length).decode("utf-8", "surrogateescape")
            if sync_id == p.ID_QUIT:
                return
            handler = _SYNC_HANDLERS.get(sync_id)
            if handler is None:
                number = int.from_bytes(sync_id, "little")
                stream.write(p.pack_sync_fail(f"unknown command {number:08x}"))
                return
            if not handler(device, sandbox, stream, reader, sync_id, path):
                return
    except (EOFError, TimeoutError, StreamClosed):
        pass
    finally:
        stream.close()


def _stat_v1(
    device: EmulatedDevice, sandbox: Sandbox, stream: Stream, reader: _Reader, sync_id: bytes,
    path: str,
) -> bool:
    try:
        st: os.stat_result | None = os.lstat(sandbox.resolve(path, follow_last=False)[1])
    except OSError:
        st = None
    stream.write(p.pack_stat_v1(st))
    return True


def _stat_v2(
    device: EmulatedDevice, sandbox: Sandbox, stream: Stream, reader: _Reader, sync_id: bytes,
    path: str,
) -> bool:
    follow = sync_id == p.ID_STAT_V2
    try:
        host = sandbox.resolve(path, follow_last=follow)[1]
        st = os.stat(host) if follow else os.lstat(host)
    except OSError as exc:
        stream.write(p.pack_stat_v2(sync_id, None, exc.errno or errno.EIO))
    else:
        stream.write(p.pack_stat_v2(sync_id, st))
    return True


def _list(
    device: EmulatedDevice, sandbox: Sandbox, stream: Stream, reader: _Reader, sync_id: bytes,
    path: str,
) -> bool:
    v2 = sync_id == p.ID_LIST_V2
    out = bytearray()
    try:
        host = sandbox.resolve(path)[1]
        names = [".", "..", *os.listdir(host)]
    except OSError:
        names = []
        host = sandbox.root
    for name in names:
        if name == ".":
            target = host
        elif name == "..":
            target = host.parent if host != sandbox.root else host
        else:
            target = host / name
        raw = os.fsencode(name)
        try:
            st = os.lstat(target)
        except OSError as exc:
            if v2:
                out += p.pack_dent_v2(raw, None, exc.errno or errno.EIO)
            continue
        out += p.pack_dent_v2(raw, st) if v2 else p.pack_dent_v1(raw, st)
        if len(out) >= p.SYNC_DATA_MAX:
            stream.write(bytes(out))
            out.clear()
    out += p.pack_list_done(v2)
    stream.write(bytes(out))
    return True


def _recv(
    device: EmulatedDevice, sandbox: Sandbox, stream: Stream, reader: _Reader, sync_id: bytes,
    path: str,
) -> bool:
    try:
        host = sandbox.resolve(path)[1]
        f = open(host, "rb")
    except IsADirectoryError:
        stream.write(p.pack_sync_fail("read failed: Is a directory"))
        return False
    except OSError as exc:
        stream.write(p.pack_sync_fail(f"open failed: {_strerror(exc)}"))
        return False
    with f:
        while True:
            try:
                chunk = f.read(p.SYNC_DATA_MAX - p.SYNC_REQUEST.size)
            except OSError as exc:
                stream.write(p.pack_sync_fail(f"read failed: {_strerror(exc)}"))
                return False
            if not chunk:
                break
            stream.write(p.pack_sync_data(chunk))
    stream.write(p.pack_sync_done(0))
    return True


def _send(
    device: EmulatedDevice, sandbox: Sandbox, stream: Stream, reader: _Reader, sync_id: bytes,
    path: str,
) -> bool:
    try:
        dest, mode = p.parse_send_spec(path)
    except ValueError as exc:
        stream.write(p.pack_sync_fail(str(exc)))
        return False
    refusal = device.faults.refuse_push
    if refusal is not None:
        stream.write(p.pack_sync_fail(refusal))
        reader.discard_until_done()
        return False
    try:
        canonical, host = sandbox.resolve(dest, follow_last=False)
    except OSError as exc:
        stream.write(p.pack_sync_fail(f"couldn't create file: {_strerror(exc)}"))
        reader.discard_until_done()
        return False
    if not host.parent.is_dir():
        try:  # adbd's secure_mkdirs: missing parents are created where the user may write
            sandbox.check_writable(canonical.rsplit("/", 1)[0] or "/")
            host.parent.mkdir(parents=True)
        except OSError as exc:
            stream.write(p.pack_sync_fail(f"secure_mkdirs failed: {_strerror(exc)}"))
            reader.discard_until_done()
            return False
    try:
        sandbox.check_writable(canonical)
        if host.is_symlink() or host.is_file():
            host.unlink()
        if stat.S_ISLNK(mode):
            return _send_link(stream, reader, host)
        fd = os.open(host, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        stream.write(p.pack_sync_fail(f"couldn't create file: {_strerror(exc)}"))
        reader.discard_until_done()
        return False
    complete = False
    try:
        os.fchmod(fd, p.pushed_file_mode(mode))
        while True:
            data_id, size = reader.request()
            if data_id == p.ID_DONE:
                mtime = size
                break
            if data_id != p.ID_DATA:
                stream.write(p.pack_sync_fail("invalid data message"))
                return False
            if size > p.SYNC_DATA_MAX:
                stream.write(p.pack_sync_fail("oversize data message"))
                return False
            data = reader.read_exact(size)
            try:
                _write_all(fd, data)
            except OSError as exc:
                stream.write(p.pack_sync_fail(f"write failed: {_strerror(exc)}"))
                reader.discard_until_done()
                return False
        complete = True
    finally:
        os.close(fd)
        if not complete:  # adbd unlinks what it could not finish
            with contextlib.suppress(OSError):
                host.unlink()
    os.utime(host, (mtime, mtime), follow_symlinks=False)
    stream.write(p.pack_sync_okay())
    return True


def _send_link(stream: Stream, reader: _Reader, host: os.PathLike[str]) -> bool:
    data_id, size = reader.request()
    if data_id != p.ID_DATA or size > p.SYNC_DATA_MAX:
        stream.write(p.pack_sync_fail("invalid data message: expected ID_DATA"))
        return False
    target = reader.read_exact(size).rstrip(b"\0")
    os.symlink(target, os.fsencode(host))
    done_id, mtime = reader.request()
    if done_id != p.ID_DONE:
        stream.write(p.pack_sync_fail("invalid data message: expected ID_DONE"))
        return False
    os.utime(host, (mtime, mtime), follow_symlinks=False)
    stream.write(p.pack_sync_okay())
    return True


_SyncHandler = Callable[
    ["EmulatedDevice", Sandbox, "Stream", _Reader, bytes, str], bool
]
_SYNC_HANDLERS: dict[bytes, _SyncHandler] = {
    p.ID_LSTAT_V1: _stat_v1,
    p.ID_STAT_V2: _stat_v2,
    p.ID_LSTAT_V2: _stat_v2,
    p.ID_LIST_V1: _list,
    p.ID_LIST_V2: _list,
    p.ID_SEND_V1: _send,
    p.ID_RECV_V1: _recv,
}
