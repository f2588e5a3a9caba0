"""The emulated phone's adbd: a TCP endpoint speaking the ADB transport protocol (no AUTH).

The wire side (connections, streams) is :mod:`.transport`; the services behind OPEN are
:mod:`.services`; the phone's filesystem and how commands run is :mod:`.sandbox` and
:mod:`.runners`."""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from types import TracebackType

from . import protocol as p
from .runners import CommandRunner, make_runner
from .sandbox import DEFAULT_PROPS, Sandbox, populate, set_offline, write_props
from .transport import POLL, Connection

__all__ = ["EmulatedDevice", "Faults"]

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


@dataclass
class Faults:
    """Faults to inject; change the fields at any time, they are read when needed.

    The ``*_on_command`` knobs match a substring of the OPEN destination, e.g. of
    ``shell,v2,raw:echo hi`` or ``sync:``, and are one-shot: they reset to ``None`` when they fire.
    """

    drop_on_command: str | None = None
    """Pull the cable (RST every connection, stop listening) ``drop_delay`` s after a matching
    service was opened and acknowledged, so the command is cut mid-way."""
    drop_delay: float = 0.2
    drop_after_bytes: int | None = None
    """Pull the cable once the device has sent this many more WRTE payload bytes (any stream,
    shell v2 packet headers and sync framing included)."""
    freeze_on_command: str | None = None
    """Stop answering entirely when a matching service is opened (sockets stay open) until
    :meth:`EmulatedDevice.thaw` or ``max_freeze`` seconds have passed."""
    max_freeze: float = 60.0
    refuse_push: str | None = None
    """Every sync SEND is answered with FAIL and this message (e.g. "No space left on device")."""
    offline_on_command: str | None = None
    """Hot-plug ``offline_cores`` off (:meth:`EmulatedDevice.set_offline`) just before a
    matching service starts, as power saving or a thermal limit would between two commands
    (during a run: :func:`.standin.when_sleeping`)."""
    offline_cores: tuple[int, ...] | None = None

    def clear(self) -> None:
        """Remove every fault (``drop_delay`` and ``max_freeze`` are kept)."""
        for f in fields(self):
            if f.name not in ("drop_delay", "max_freeze"):
                setattr(self, f.name, None)


class EmulatedDevice:
    """An emulated Android phone (Galaxy S10, Exynos 9820) reachable by ``adb connect``.

    ``root`` is the sandbox folder that stands for the phone's ``/`` (see :mod:`.sandbox` for how
    commands see it). ``serial_port`` is the TCP port on 127.0.0.1 (a free one when ``None``);
    ``props`` are merged over :data:`DEFAULT_PROPS`; ``faults`` can be changed at runtime.
    ``mapping`` picks how commands see device paths: ``"auto"``, ``"namespace"`` or ``"rewrite"``.
    ``command_timeout`` kills a command that runs longer; ``io_timeout`` bounds every wait for the
    host (an unacknowledged WRTE, a half-sent sync request). ``host_dirs`` maps device folders to
    host folders commands see read-only (see :func:`.runners.make_runner`).
    """

    def __init__(
        self,
        root: Path,
        serial_port: int | None = None,
        props: dict[str, str] | None = None,
        faults: Faults | None = None,
        *,
        mapping: str = "auto",
        command_timeout: float = 120.0,
        io_timeout: float = 30.0,
        host_dirs: dict[str, Path] | None = None,
    ) -> None:
        self.root = Path(root)
        self.host_dirs = dict(host_dirs or {})
        self._port = serial_port
        self.props: dict[str, str] = {**DEFAULT_PROPS, **(props or {})}
        self.faults = faults if faults is not None else Faults()
        self.mapping = mapping
        self.command_timeout = command_timeout
        self.io_timeout = io_timeout
        self.sandbox: Sandbox | None = None
        self.runner: CommandRunner | None = None
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._thawed = threading.Event()
        self._thawed.set()
        self._freeze_deadline = 0.0
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._connections: set[Connection] = set()
        self._services: set[threading.Thread] = set()
        self._started = False
        self.drops = 0

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the device has no port before start()")
        return self._port

    @property
    def serial(self) -> str:
        """The adb serial of this device once connected: ``127.0.0.1:PORT``."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def plugged(self) -> bool:
        """Whether the device is listening (False after a drop, until :meth:`revive`)."""
        return self._listener is not None

    def start(self) -> EmulatedDevice:
        """Lay out the sandbox, start the command runner and listen on 127.0.0.1."""
        with self._lock:
            if self._started:
                return self
            self.root.mkdir(parents=True, exist_ok=True)
            self.sandbox = Sandbox(self.root)
            props_path = "/system/build.prop"
            if self.mapping == "rewrite":
                props_path = f"{self.sandbox.root}/system/build.prop"
            populate(self.sandbox.root, self.props, props_path)
            self.runner = make_runner(self.sandbox.root, self.mapping, self.host_dirs)
            if self.runner.mode == "rewrite" and self.mapping != "rewrite":
                populate(self.sandbox.root, self.props, f"{self.sandbox.root}/system/build.prop")
            self._stopping.clear()
            self._started = True
            try:
                self._listen()
            except BaseException:
                self.stop()
                raise
        return self

    def stop(self) -> None:
        """Stop listening, close every connection and stream, kill every command."""
        try:
            with self._lock:
                self._stopping.set()
                self._thawed.set()
                self._close_listener()
                connections = list(self._connections)
            for conn in connections:
                conn.close()
            deadline = time.monotonic() + 5.0
            with self._lock:
                threads = [c.thread for c in connections] + list(self._services)
            if self._accept_thread is not None:
                threads.append(self._accept_thread)
            for thread in threads:  # services end once their stream closed and command died
                if thread is not threading.current_thread() and thread.ident is not None:
                    thread.join(timeout=max(0.0, deadline - time.monotonic()))
        finally:
            with self._lock:
                runner, self.runner = self.runner, None
                self._started = False
            if runner is not None:
                runner.close()

    def __enter__(self) -> EmulatedDevice:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _listen(self) -> None:
        old = self._accept_thread
        if old is not None and old is not threading.current_thread():
            old.join(timeout=2)
        deadline = time.monotonic() + 2.0
        while True:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                listener.bind((LOOPBACK, self._port or 0))
                listener.listen(8)
                break
            except OSError as exc:
                listener.close()
                if exc.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                    raise
                time.sleep(POLL)
        listener.settimeout(POLL)
        self._port = listener.getsockname()[1]
        self._listener = listener
        self._accept_thread = threading.Thread(
            target=self._accept_loop, args=(listener,), name=f"adb-emulator-{self._port}-accept",
            daemon=True,
        )
        self._accept_thread.start()

    def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # frees the port even while accept() polls
            with contextlib.suppress(OSError):
                listener.close()

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stopping.is_set() and self._listener is listener:
            if not self._thawed.is_set():
                self._wait_while_frozen(None)
                continue
            try:
                sock, addr = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            if not addr[0].startswith("127."):
                sock.close()
                continue
            with self._lock:
                if self._stopping.is_set() or self._listener is not listener:
                    sock.close()
                    break
                conn = Connection(self, sock)
                self._connections.add(conn)
                conn.start()  # under the lock, so stop() never sees an unstarted thread

    def _spawn(self, name: str, target: Callable[..., None], *args: object) -> None:
        """Run a service in a daemon thread that stop() waits for."""

        def run() -> None:
            try:
                target(*args)
            except Exception:
                log.exception("%s failed", name)
            finally:
                with self._lock:
                    self._services.discard(threading.current_thread())

        thread = threading.Thread(target=run, name=name, daemon=True)
        with self._lock:
            self._services.add(thread)
            thread.start()

    def _forget(self, conn: Connection) -> None:
        with self._lock:
            self._connections.discard(conn)

    # -- faults ---------------------------------------------------------------------------------

    def drop(self) -> None:
        """Pull the cable: every connection is reset (TCP RST), the port stops listening and
        every running command is killed. :meth:`revive` plugs the device back in."""
        with self._lock:
            self.drops += 1
            self._close_listener()
            connections = list(self._connections)
        for conn in connections:
            conn.close(abort=True)

    def revive(self) -> None:
        """Plug the device back in: listen again on the same port (the adb server reconnects)."""
        with self._lock:
            if not self._started:
                raise RuntimeError("start() the device first")
            if self._listener is None:
                self._listen()

    def freeze(self) -> None:
        """Stop answering (no reads, no writes, no accepts) while keeping every socket open."""
        self._freeze_deadline = time.monotonic() + self.faults.max_freeze
        self._thawed.clear()

    def thaw(self) -> None:
        """Resume after :meth:`freeze` (pending requests are then served)."""
        self._thawed.set()

    @property
    def frozen(self) -> bool:
        return not self._thawed.is_set()

    def _wait_while_frozen(self, closed: threading.Event | None) -> None:
        while not self._thawed.wait(POLL):
            if self._stopping.is_set() or (closed is not None and closed.is_set()):
                return
            if time.monotonic() > self._freeze_deadline:
                self.thaw()

    def _take_budget(self, n: int) -> tuple[int, bool]:
        """How many of ``n`` payload bytes may go out, and whether to pull the cable after them
        (``drop_after_bytes``)."""
        with self._lock:
            budget = self.faults.drop_after_bytes
            if budget is None:
                return n, False
            if n < budget:
                self.faults.drop_after_bytes = budget - n
                return n, False
            self.faults.drop_after_bytes = None
            return max(0, budget), True

    # -- device state ---------------------------------------------------------------------------

    def banner(self) -> bytes:
        return p.connect_banner(self.props)

    def set_prop(self, key: str, value: str) -> None:
        """Change a property (``getprop`` sees it at once; the banner at the next connection)."""
        self.props[key] = value
        if self.sandbox is not None:
            write_props(self.sandbox.root, self.props)

    def set_offline(self, *cores: int) -> None:
        """Hot-plug exactly these cores off, every other core on (none: all back online), as
        power saving or a thermal limit does on the phone (see :func:`.sandbox.set_offline`):
        ``/sys/devices/system/cpu/online`` and ``cpuN/online`` change at once, and ``taskset``
        with a mask of offline cores only fails with "Invalid argument"."""
        set_offline((self.sandbox or Sandbox(self.root)).root, cores)

    def host_path(self, device_path: str) -> Path:
        """The host path of a device path, e.g. to seed or inspect files from a test."""
        sandbox = self.sandbox or Sandbox(self.root)
        return sandbox.host_path(device_path)

    @property
    def mapping_mode(self) -> str:
        """``"namespace"`` or ``"rewrite"``: how commands see device paths (after start)."""
        return self.runner.mode if self.runner is not None else self.mapping
