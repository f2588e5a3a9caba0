"""The emulated adbd's side of the ADB transport: one :class:`Connection` per TCP connection
from the adb server (its reader thread, CNXN and OPEN) and its :class:`Stream` objects, with
adbd's flow control (one unacknowledged WRTE at a time)."""

from __future__ import annotations

import contextlib
import logging
import queue
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import protocol as p
from .protocol import StreamClosed
from .services import service_handler

if TYPE_CHECKING:
    from .device import EmulatedDevice

__all__ = ["POLL", "Connection", "Stream"]

log = logging.getLogger(__name__)

POLL = 0.1  # how often blocked loops look at the stop/freeze flags, seconds


class Stream:
    """One ADB stream (local id <-> remote id) with adbd's flow control.

    Every WRTE sent waits for the peer's OKAY before the next one; every WRTE received is
    acknowledged with OKAY only when a service has taken it (so a slow service throttles the host).
    """

    def __init__(self, conn: Connection, local_id: int, remote_id: int) -> None:
        self.conn = conn
        self.local_id = local_id
        self.remote_id = remote_id
        self._inbox: queue.Queue[bytes | None] = queue.Queue()
        self._may_send = threading.Event()
        self._may_send.set()
        self.closed = threading.Event()
        self._on_close: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def add_close_callback(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the stream closes (at once if it already has)."""
        with self._lock:
            self._on_close.append(callback)
        if self.closed.is_set():
            self._run_callbacks()

    def _run_callbacks(self) -> None:
        with self._lock:
            callbacks, self._on_close = self._on_close, []
        for callback in callbacks:
            with contextlib.suppress(Exception):
                callback()

    # called by the connection's reader thread
    def on_okay(self) -> None:
        self._may_send.set()

    def on_write(self, data: bytes) -> None:
        self._inbox.put(data)

    def on_closed(self) -> None:
        """The peer closed the stream, or the connection died."""
        self.closed.set()
        self._inbox.put(None)
        self._may_send.set()
        self._run_callbacks()

    # called by service threads
    def read(self, timeout: float) -> bytes | None:
        """The next WRTE payload (acknowledged), ``None`` once closed; ``TimeoutError`` if none."""
        try:
            item = self._inbox.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError("no data from the host") from None
        if item is None:
            self._inbox.put(None)
            return None
        with contextlib.suppress(StreamClosed):
            self.conn.send(p.A_OKAY, self.local_id, self.remote_id)
        return item

    def write(self, data: bytes) -> None:
        """Send ``data`` in WRTE messages, one at a time, each after the previous OKAY."""
        view = memoryview(data)
        while view:
            chunk = bytes(view[: self.conn.max_payload])
            deadline = time.monotonic() + self.conn.device.io_timeout
            while not self._may_send.wait(POLL):
                if time.monotonic() > deadline and not self.conn.device.frozen:
                    raise StreamClosed("the host did not acknowledge in time")
            if self.closed.is_set():
                raise StreamClosed("stream closed")
            self._may_send.clear()
            allowed, pull = self.conn.device._take_budget(len(chunk))
            if allowed:
                self.conn.send(p.A_WRTE, self.local_id, self.remote_id, chunk[:allowed])
            if pull:
                time.sleep(POLL)  # let the bytes reach the host before the RST
                self.conn.device.drop()
                raise StreamClosed("cable pulled (drop_after_bytes)")
            view = view[len(chunk):]

    def close(self) -> None:
        """Close from the device side (sends CLSE)."""
        if self.closed.is_set():
            return
        self.conn.forget(self.local_id)
        with contextlib.suppress(StreamClosed):
            self.conn.send(p.A_CLSE, self.local_id, self.remote_id)
        self.on_closed()


class Connection:
    """One TCP connection from the adb server: its reader thread and its streams."""

    def __init__(self, device: EmulatedDevice, sock: socket.socket) -> None:
        self.device = device
        self.sock = sock
        self.max_payload = p.MAX_PAYLOAD
        self.host_features: set[str] = set()
        self._send_lock = threading.Lock()
        self._streams: dict[int, Stream] = {}
        self._streams_lock = threading.Lock()
        self._next_id = 1
        self.closed = threading.Event()
        sock.settimeout(device.io_timeout)  # bounds sendall; the reader polls with select
        self.thread = threading.Thread(
            target=self._run, name=f"adb-emulator-{device.port}-conn", daemon=True
        )

    def start(self) -> None:
        self.thread.start()

    def send(self, command: int, arg0: int, arg1: int, payload: bytes = b"") -> None:
        self.device._wait_while_frozen(self.closed)
        if self.closed.is_set():
            raise StreamClosed("connection closed")
        data = p.pack_message(command, arg0, arg1, payload)
        try:
            with self._send_lock:
                self.sock.sendall(data)
        except (OSError, ValueError) as exc:
            self.close()
            raise StreamClosed(str(exc)) from exc

    def forget(self, local_id: int) -> None:
        with self._streams_lock:
            self._streams.pop(local_id, None)

    def _recv_exact(self, n: int) -> bytes | None:
        buf = bytearray()
        while len(buf) < n:
            if self.closed.is_set() or self.device._stopping.is_set():
                return None
            try:
                ready, _, _ = select.select([self.sock], [], [], POLL)
                if not ready:
                    continue
                chunk = self.sock.recv(n - len(buf))
            except (OSError, ValueError):
                return None
            if not chunk:
                return None
            buf += chunk
        return bytes(buf)

    def _run(self) -> None:
        try:
            while not self.closed.is_set() and not self.device._stopping.is_set():
                self.device._wait_while_frozen(self.closed)
                raw = self._recv_exact(p.HEADER_SIZE)
                if raw is None:
                    break
                header = p.parse_header(raw, p.MAX_PAYLOAD)
                payload = self._recv_exact(header.length) if header.length else b""
                if payload is None:
                    break
                self._dispatch(header, payload)
        except (p.ProtocolError, StreamClosed) as exc:
            log.debug("connection ended: %s", exc)
        finally:
            self.close()

    def _dispatch(self, header: p.Header, payload: bytes) -> None:
        cmd = header.command
        if cmd == p.A_CNXN:
            self.max_payload = min(p.MAX_PAYLOAD, header.arg1 or p.MAX_PAYLOAD)
            _, banner = p.parse_banner(payload)
            self.host_features = set(filter(None, banner.get("features", "").split(",")))
            self.send(p.A_CNXN, p.A_VERSION, p.MAX_PAYLOAD, self.device.banner())
        elif cmd == p.A_OPEN:
            self._open(header.arg0, payload)
        elif cmd in (p.A_OKAY, p.A_WRTE, p.A_CLSE):
            with self._streams_lock:
                stream = self._streams.get(header.arg1)
                if cmd == p.A_CLSE:
                    self._streams.pop(header.arg1, None)
            if stream is None:
                return
            if cmd == p.A_OKAY:
                stream.on_okay()
            elif cmd == p.A_WRTE:
                stream.on_write(payload)
            else:
                stream.on_closed()
        # AUTH, STLS and SYNC are not part of this device's protocol: ignored

    def _open(self, remote_id: int, payload: bytes) -> None:
        name = payload.rstrip(b"\0").decode("utf-8", "surrogateescape")
        faults = self.device.faults
        trigger = faults.freeze_on_command
        if trigger is not None and trigger in name:
            faults.freeze_on_command = None
            self.device.freeze()
            self.device._wait_while_frozen(self.closed)
        if remote_id == 0:
            return
        trigger = faults.offline_on_command
        if trigger is not None and trigger in name:
            faults.offline_on_command = None
            self.device.set_offline(*(faults.offline_cores or ()))
        request = p.parse_service(name)
        handler = service_handler(request)
        if handler is None:
            self.send(p.A_CLSE, 0, remote_id)
            return
        with self._streams_lock:
            local_id = self._next_id
            self._next_id += 1
            stream = Stream(self, local_id, remote_id)
            self._streams[local_id] = stream
        self.send(p.A_OKAY, local_id, remote_id)
        self.device._spawn(
            f"adb-emulator-{self.device.port}-{request.kind}", handler, self.device, stream, request
        )
        trigger = faults.drop_on_command
        if trigger is not None and trigger in name:
            faults.drop_on_command = None
            timer = threading.Timer(max(0.0, faults.drop_delay), self.device.drop)
            timer.name = f"adb-emulator-{self.device.port}-drop"
            timer.daemon = True
            timer.start()

    def close(self, abort: bool = False) -> None:
        """Close the socket (``abort``: with a TCP RST, as a pulled cable) and all streams."""
        if self.closed.is_set():
            return
        self.closed.set()
        if abort:
            with contextlib.suppress(OSError):
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            self.sock.close()
        with self._streams_lock:
            streams, self._streams = list(self._streams.values()), {}
        for stream in streams:
            stream.on_closed()
        self.device._forget(self)
