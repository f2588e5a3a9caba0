"""pytest fixtures: a private, real adb server and an emulated phone connected to it.

Register them in ``tests/conftest.py`` with::

    from adb_emulator.fixtures import adb_server, emulated_device  # noqa: F401

``adb_server`` (session): starts the real adb server on a free port (``adb -P PORT
start-server``, with ``ANDROID_ADB_SERVER_PORT`` set) and kills it at the end; it skips the
tests when no adb binary exists. ``emulated_device`` (per test): an :class:`EmulatedDevice` in
``tmp_path/phone``, connected with ``adb connect`` and online, plus the real
``adbutils.AdbDevice`` for it; ``ANDROID_ADB_SERVER_PORT`` points at the private server for the
test's duration, so ``adbutils.AdbClient()`` in the code under test finds it too.

The server runs with ``ADB_MDNS=0 ADB_USB=0 ADB_EMU=0``: no mDNS traffic, no USB scan, no
probing of the emulator ports 5555-5585; it only ever talks to 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import adbutils
import pytest

from .device import EmulatedDevice

SERVER_ENV = {"ADB_MDNS": "0", "ADB_USB": "0", "ADB_EMU": "0"}
CONNECT_TIMEOUT = 10.0


def find_adb() -> str | None:
    """The adb binary: ``$ADBUTILS_ADB_PATH``, then ``adb`` on PATH, then adbutils' bundled one."""
    candidates = [
        os.environ.get("ADBUTILS_ADB_PATH"),
        shutil.which("adb"),
        str(Path(adbutils.__file__).parent / "binaries" / "adb"),
    ]
    for candidate in candidates:
        if not candidate or not os.access(candidate, os.X_OK):
            continue
        try:
            result = subprocess.run(
                [candidate, "version"], capture_output=True, timeout=10, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if result.returncode == 0:
            return candidate
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (outside adb's 5555-5585)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not 5554 <= port <= 5585:
            return port


class AdbServer(NamedTuple):
    """A private adb server: unpacks as ``(adb_path, port)``."""

    adb: str
    port: int

    def env(self) -> dict[str, str]:
        return {**os.environ, **SERVER_ENV, "ANDROID_ADB_SERVER_PORT": str(self.port)}

    def run(
        self, *args: str, timeout: float = 20.0, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``adb -P PORT ARGS...`` (output captured as text; never raises on exit status)."""
        return subprocess.run(
            [self.adb, "-P", str(self.port), *args], capture_output=True, text=True,
            timeout=timeout, env=self.env(), input=input, check=False,
            stdin=None if input is not None else subprocess.DEVNULL,
        )

    def client(self) -> adbutils.AdbClient:
        return adbutils.AdbClient(host="127.0.0.1", port=self.port)

    def state(self, serial: str) -> str | None:
        """The serial's state in ``adb devices`` (``device``, ``offline``...) or None."""
        for line in self.run("devices", timeout=10).stdout.splitlines()[1:]:
            name, _, state = line.partition("\t")
            if name == serial:
                return state.strip()
        return None

    def wait_for_state(self, serial: str, state: str | None, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if self.state(serial) == state:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)


def start_adb_server(adb: str, log_dir: Path | None = None, attempts: int = 3) -> AdbServer:
    """Start a real adb server on a free port (its log goes to ``log_dir`` when given)."""
    last = ""
    for _ in range(attempts):
        server = AdbServer(adb, free_port())
        env = server.env()
        if log_dir is not None:
            env["ANDROID_ADB_LOG_PATH"] = str(log_dir / f"adb-server-{server.port}.log")
        # a file, not a pipe: the daemonized server would keep a pipe open
        with tempfile.TemporaryFile() as out:
            result = subprocess.run(
                [adb, "-P", str(server.port), "start-server"], stdin=subprocess.DEVNULL,
                stdout=out, stderr=out, env=env, timeout=30, check=False,
            )
            out.seek(0)
            last = out.read().decode(errors="replace")
        if result.returncode == 0:
            return server
    raise RuntimeError(f"adb start-server failed: {last.strip()}")


def stop_adb_server(server: AdbServer, timeout: float = 5.0) -> None:
    """``adb kill-server``, then wait (bounded) until the port no longer answers."""
    server.run("kill-server", timeout=10)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", server.port), timeout=0.5).close()
        except OSError:
            return
        time.sleep(0.05)


def connect_device(
    server: AdbServer, phone: EmulatedDevice, timeout: float = CONNECT_TIMEOUT
) -> adbutils.AdbDevice:
    """``adb connect`` the phone and wait until it is online; returns its adbutils.AdbDevice."""
    result = server.run("connect", phone.serial, timeout=timeout)
    if "connected to" not in result.stdout:
        raise RuntimeError(f"adb connect {phone.serial}: {result.stdout}{result.stderr}")
    if not server.wait_for_state(phone.serial, "device", timeout):
        raise RuntimeError(f"{phone.serial} did not come online: {server.state(phone.serial)}")
    return server.client().device(serial=phone.serial)


@pytest.fixture(scope="session")
def adb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdbServer]:
    """A private real adb server for the session: ``(adb_path, port)``."""
    adb = find_adb()
    if adb is None:
        pytest.skip(
            "no adb binary found: install Debian's `adb` package, or adbutils (its wheel "
            "bundles one), or set ADBUTILS_ADB_PATH"
        )
    server = start_adb_server(adb, tmp_path_factory.mktemp("adb-server"))
    try:
        yield server
    finally:
        stop_adb_server(server)


@pytest.fixture
def emulated_device(
    adb_server: AdbServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[EmulatedDevice, adbutils.AdbDevice]]:
    """An emulated Galaxy S10 connected to ``adb_server``: ``(EmulatedDevice, AdbDevice)``."""
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(adb_server.port))
    phone = EmulatedDevice(tmp_path / "phone").start()
    try:
        yield phone, connect_device(adb_server, phone)
    finally:
        adb_server.run("disconnect", phone.serial, timeout=10)
        phone.stop()


@pytest.fixture
def phone(
    adb_server: AdbServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[EmulatedDevice]:
    """An emulated Galaxy S10 that can run the stand-in benchmark_model (see .standin),
    connected to ``adb_server`` (``ANDROID_ADB_SERVER_PORT`` points at it for the test)."""
    from .standin import standin_host_dirs

    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(adb_server.port))
    device = EmulatedDevice(tmp_path / "phone", host_dirs=standin_host_dirs()).start()
    try:
        if device.mapping_mode != "namespace":
            pytest.skip(
                "the device scripts read /sys and /proc by their device paths, which needs the "
                "emulator's namespace sandbox (unshare/nsenter with user namespaces)"
            )
        connect_device(adb_server, device)
        yield device
    finally:
        adb_server.run("disconnect", device.serial, timeout=10)
        device.stop()
