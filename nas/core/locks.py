"""One writer at a time: the one lock of donnav2's files (a LUT, a BKD library, a run folder).

:func:`writer_lock` takes an OS file lock (``fcntl.flock``) on a sidecar file, ``<path>.lock``
next to the file it protects. The operating system drops the lock when the holder's process
ends, however it ends (``kill -9`` included), so a lock is never stale. The holder writes its
pid and command line into the sidecar, so a second writer is refused at once with a message
that names them (or waits, when asked to). The sidecar file stays (removing a lock file races
with the next writer); released, it is empty.

Readers need no lock: every file is written atomically (:func:`nas.core.files.atomic_write`).
The lock is per open file, not per process: two writers in one process exclude each other too.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import shlex
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from nas.core.errors import DonnaError


class LockError(DonnaError):
    """A writer's lock file cannot be created (an unwritable folder, a path that is a file)."""


class LockedError(LockError):
    """Another writer holds the lock; the message names it (pid, command) and what to do."""


@dataclass(frozen=True)
class Holder:
    """Who holds a lock, as it wrote itself into the lock file."""

    pid: int | None
    command: str
    since: str
    host: str

    def describe(self) -> str:
        if self.pid is None:
            return "another process (it has not written its pid yet)"
        who = "this same process" if self._is_me() else "another process"
        where = "" if not self.host or self.host == socket.gethostname() else f" on {self.host}"
        since = f", since {self.since}" if self.since else ""
        return f"{who}: pid {self.pid}{where} ({self.command or 'command unknown'}{since})"

    def _is_me(self) -> bool:
        return self.pid == os.getpid() and self.host in ("", socket.gethostname())


def lock_file_for(path: str | Path) -> Path:
    """The sidecar lock file of ``path``: ``<path>.lock``."""
    path = Path(path)
    return path.with_name(path.name + ".lock")


def read_holder(lock_file: str | Path) -> Holder | None:
    """The holder a lock file names (``None``: empty, released or unreadable)."""
    try:
        data = json.loads(Path(lock_file).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    pid = data.get("pid")
    return Holder(
        pid if isinstance(pid, int) else None,
        str(data.get("command", "")),
        str(data.get("since", "")),
        str(data.get("host", "")),
    )


def _my_command() -> str:
    argv = getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv]
    text = " ".join(shlex.join([os.path.basename(argv[0]), *argv[1:]]).split())  # one line
    return text if len(text) <= 300 else text[:297] + "..."


class WriterLock:
    """The lock of one writer on ``path`` (the file or folder it writes); ``what`` names it in
    messages (``"LUT"``, ``"BKD library"``, ``"run folder"``). Use :func:`writer_lock`."""

    def __init__(self, path: str | Path, what: str, lock_file: str | Path | None = None) -> None:
        self.path = Path(path)
        self.what = what
        self.lock_file = Path(lock_file) if lock_file is not None else lock_file_for(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, wait: float = 0.0) -> None:
        """Take the lock; held by another writer: wait up to ``wait`` seconds (``math.inf``:
        for as long as it takes), then raise :class:`LockedError`."""
        if self._fd is not None:
            raise LockError(f"{self.what} {self.path}: this lock is already held by this writer")
        fd = self._open()
        deadline = time.monotonic() + wait
        try:
            while not _try_flock(fd):
                if time.monotonic() >= deadline:
                    raise self._locked_error()
                time.sleep(0.05 if math.isinf(wait) else min(0.05, wait))
            info = {
                "pid": os.getpid(),
                "command": _my_command(),
                "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                "host": socket.gethostname(),
            }
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + "\n").encode("utf-8"), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        """Let the next writer in (also done by the OS when this process ends)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # released: nobody to name
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> WriterLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    # ---- internals ------------------------------------------------------------------------
    def _open(self) -> int:
        try:
            self.lock_file.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise LockError(
                f"cannot write {self.what} {self.path}: cannot create its lock file "
                f"{self.lock_file} ({exc.strerror or exc}); choose another path or fix the "
                "folder's permissions"
            ) from None

    def _locked_error(self) -> LockedError:
        holder = read_holder(self.lock_file)
        for _ in range(20):  # the holder has the lock but may not have written its name yet
            if holder is not None and holder.pid is not None:
                break
            time.sleep(0.025)
            holder = read_holder(self.lock_file)
        holder = holder or Holder(None, "", "", "")
        stop = f"stop it (kill {holder.pid})" if holder.pid is not None else "stop it"
        return LockedError(
            f"{self.what} {self.path} is being written by {holder.describe()}; one writer at "
            f"a time: wait for it to finish or {stop}, then run again (lock file "
            f"{self.lock_file})"
        )


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextlib.contextmanager
def writer_lock(
    path: str | Path,
    what: str,
    *,
    wait: float = 0.0,
    lock_file: str | Path | None = None,
) -> Iterator[WriterLock]:
    """Hold the one-writer lock of ``path`` for the ``with`` block: another writer holding it
    refuses this one at once with :class:`LockedError` naming it (``wait``: seconds to wait
    for it first; ``math.inf``: wait until it is done). ``lock_file`` defaults to
    ``<path>.lock``."""
    lock = WriterLock(path, what, lock_file)
    lock.acquire(wait)
    try:
        yield lock
    finally:
        lock.release()
