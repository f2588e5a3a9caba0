"""The device-side services behind OPEN: ``sync:`` here, ``shell:``, ``shell,v2,...:`` and
``exec:`` in :mod:`.shell`."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import protocol as p
from .protocol import StreamClosed
from .sandbox import Sandbox
from .shell import run_shell, write_all

if TYPE_CHECKING:
    from .device import EmulatedDevice
    from .transport import Stream

Handler = Callable[["EmulatedDevice", "Stream", p.ServiceRequest], None]


def service_handler(request: p.ServiceRequest) -> Handler | None:
    """The function that serves ``request`` (run in its own thread), or None if unsupported."""
    return {"shell": run_shell, "exec": run_shell, "sync": run_sync}.get(request.kind)


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
                write_all(fd, data)
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
