"""The ``shell:``, ``exec:`` and ``shell,v2,...:`` services of the emulated adbd: the command
runs on a PTY (raw mode, stderr merged) or on pipes (shell v2: split stdout/stderr, stdin,
exit code), killed after the device's ``command_timeout`` or when the stream closes."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import threading
import time
import tty
from typing import TYPE_CHECKING

from . import protocol as p
from .protocol import StreamClosed

if TYPE_CHECKING:
    from .device import EmulatedDevice
    from .transport import Stream

__all__ = ["run_shell", "write_all"]

READ_CHUNK = 64 * 1024
POLL = 0.1


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (``os.write`` may write less)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def run_shell(device: EmulatedDevice, stream: Stream, request: p.ServiceRequest) -> None:
    """Run the command, relay stdin/stdout/stderr (raw bytes or shell v2 packets), then the
    exit code (v2), then close the stream."""
    runner = device.runner
    if runner is None:
        stream.close()
        return
    argv, env, cwd = runner.argv(request.command), runner.env(request.term), runner.cwd
    command = _ShellCommand(device, stream, request)
    try:
        command.spawn(argv, env, cwd)
    except OSError as exc:
        command.refuse(exc)
        return
    stream.add_close_callback(command.kill)
    command.relay(time.monotonic() + device.command_timeout)


class _ShellCommand:
    """One ``shell:``/``exec:`` command: its process (on a PTY or on pipes) and the threads
    that relay its output to the stream and the stream to its stdin."""

    def __init__(self, device: EmulatedDevice, stream: Stream, request: p.ServiceRequest) -> None:
        self.device = device
        self.stream = stream
        self.request = request
        self.v2 = request.shell_protocol
        self.master: int | None = None
        self.stdin_fd: int | None = None
        self.outputs: list[tuple[int, int]] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self.finished = threading.Event()
        self.deadline = 0.0

    def spawn(self, argv: list[str], env: dict[str, str], cwd: str | None) -> None:
        """Start the process (``OSError`` if it cannot be started)."""
        try:
            if self.request.use_pty:
                self.master, slave = pty.openpty()
                if self.request.raw_pty:
                    tty.setraw(slave)
                try:
                    self.proc = subprocess.Popen(
                        argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd,
                        start_new_session=True, close_fds=True,
                    )
                finally:
                    os.close(slave)
                self.outputs = [(self.master, p.SHELL_STDOUT)]
                self.stdin_fd = self.master
            else:
                proc = subprocess.Popen(
                    argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    env=env, cwd=cwd, start_new_session=True, close_fds=True,
                )
                self.proc = proc
                assert proc.stdin and proc.stdout and proc.stderr
                self.outputs = [
                    (proc.stdout.fileno(), p.SHELL_STDOUT), (proc.stderr.fileno(), p.SHELL_STDERR)
                ]
                self.stdin_fd = proc.stdin.fileno()
        except OSError:
            if self.master is not None:
                os.close(self.master)
            raise

    def refuse(self, exc: OSError) -> None:
        """Tell the host the command could not start (as the phone's sh would), close."""
        stream, v2 = self.stream, self.v2
        with contextlib.suppress(StreamClosed):
            message = f"/system/bin/sh: {exc.strerror}\n".encode()
            stream.write(p.pack_shell_packet(p.SHELL_STDERR, message) if v2 else message)
            if v2:
                stream.write(p.pack_shell_exit(127))
        stream.close()

    def kill(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)

    def pump_output(self, fd: int, packet_id: int) -> None:
        while not self.finished.is_set() and time.monotonic() < self.deadline:
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
                self.stream.write(p.pack_shell_packet(packet_id, data) if self.v2 else data)
            except StreamClosed:
                self.kill()
                return

    def pump_input(self) -> None:
        parser = p.ShellPacketParser()
        while not self.finished.is_set():
            try:
                data = self.stream.read(timeout=POLL)
            except TimeoutError:
                continue
            if data is None:
                return
            try:
                if not self.v2:
                    if self.stdin_fd is not None:
                        write_all(self.stdin_fd, data)
                    continue
                for packet_id, payload in parser.feed(data):
                    self._on_packet(packet_id, payload)
            except (OSError, ValueError):  # the command closed its stdin or ended
                self.stdin_fd = None
            except p.ProtocolError:
                self.kill()
                return

    def _on_packet(self, packet_id: int, payload: bytes) -> None:
        """One shell v2 packet from the host: stdin data, close stdin, or a window size."""
        master, proc = self.master, self.proc
        if packet_id == p.SHELL_STDIN and self.stdin_fd is not None:
            write_all(self.stdin_fd, payload)
        elif packet_id == p.SHELL_CLOSE_STDIN:
            if master is not None:
                write_all(master, b"\x04")  # a PTY cannot half-close: send ^D
            elif proc is not None and proc.stdin is not None:
                proc.stdin.close()
                self.stdin_fd = None
        elif packet_id == p.SHELL_WINDOW_SIZE and master is not None:
            size = p.parse_window_size(payload)
            if size is not None:
                fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", *size))

    def relay(self, deadline: float) -> None:
        """Relay until the command ends (killed at ``deadline``), send its exit code (v2) and
        release everything."""
        proc, port = self.proc, self.device.port
        assert proc is not None
        self.deadline = deadline
        pumps = [
            threading.Thread(
                target=self.pump_output, args=out, name=f"adb-emulator-{port}-out", daemon=True
            )
            for out in self.outputs
        ]
        feeder = threading.Thread(
            target=self.pump_input, name=f"adb-emulator-{port}-in", daemon=True
        )
        for thread in (*pumps, feeder):
            thread.start()
        try:
            for thread in pumps:
                thread.join(max(0.0, deadline - time.monotonic()))
            if any(thread.is_alive() for thread in pumps):
                self.kill()  # command_timeout
            try:
                proc.wait(timeout=max(0.5, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.kill()
                proc.wait(timeout=5)
            self.finished.set()
            for thread in pumps:
                thread.join(1.0)
            if self.v2 and not self.stream.closed.is_set():
                with contextlib.suppress(StreamClosed):
                    self.stream.write(p.pack_shell_exit(_exit_code(proc.returncode)))
        finally:
            self._release(feeder)

    def _release(self, feeder: threading.Thread) -> None:
        proc = self.proc
        assert proc is not None
        self.finished.set()
        self.kill()
        feeder.join(1.0)
        self.stream.close()
        if self.master is not None:
            os.close(self.master)
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=1)
