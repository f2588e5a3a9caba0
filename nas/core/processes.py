"""Worker processes that never outlive their parent.

:func:`die_with_parent` is the one helper every process pool runs first in its workers (the
conversion pool of :func:`latency.convert.convert_many`, BKD's
:class:`~nas.bkd.executor.ProcessExecutor`). When the parent dies by any signal, ``kill -9``
included, its workers end too instead of running on for minutes (a conversion worker holds
about 1 GB). Their end also closes multiprocessing's resource tracker, which waits for them.
"""

from __future__ import annotations

import os
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _parent_pid() -> int:
    """The pid of the process that started this one: multiprocessing knows it in its
    workers (already reparented when the parent died first); else ``os.getppid()``."""
    import multiprocessing

    parent = multiprocessing.parent_process()
    if parent is not None and parent.pid is not None:
        return int(parent.pid)
    return os.getppid()


def _set_parent_death_signal(sig: int) -> bool:
    """Linux: have the kernel send ``sig`` to this process when its parent dies."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent: int, interval: float) -> None:
    while True:
        time.sleep(interval)
        if os.getppid() != parent:
            os._exit(1)


def die_with_parent(parent_pid: int | None = None, poll_s: float = 0.5) -> None:
    """End this process as soon as its parent (``parent_pid``, default: the process that
    started it) dies, by any signal.

    Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, then a check that the parent is still there
    (it may have died before the call). Elsewhere: a daemon thread that polls
    ``os.getppid()`` every ``poll_s`` seconds. Note for Linux: the signal comes when the
    *thread* that started the worker ends, so start pools from a thread that outlives them
    (both pools here live inside one call of their caller)."""
    import signal

    parent = _parent_pid() if parent_pid is None else parent_pid
    if not _set_parent_death_signal(signal.SIGKILL):
        threading.Thread(
            target=_watch_parent, args=(parent, poll_s), name="die-with-parent", daemon=True
        ).start()
    if os.getppid() != parent:  # the parent died before we could ask to follow it
        os._exit(1)
