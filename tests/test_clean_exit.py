"""Worker processes end with their parent (nas.core.processes.die_with_parent): a parent
killed with SIGKILL while BKD or conversion workers are busy leaves no child behind (workers
nor multiprocessing's resource tracker)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

SLEEPY_BKD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path

    def slow(path):
        Path(path).touch()  # this task has started, in a worker
        time.sleep(600)
        return path

    if __name__ == "__main__":
        from nas.bkd.executor import ProcessExecutor

        folder = Path(sys.argv[1])
        tasks = [str(folder / f"task{i}") for i in range(6)]
        for _ in ProcessExecutor(2).map_unordered(slow, tasks):
            pass
    """
)


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    left = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                left.append(p)
        except psutil.NoSuchProcess:
            pass
    return left


def _kill_9_and_check_children_go(proc: subprocess.Popen, min_children: int) -> None:
    children = psutil.Process(proc.pid).children(recursive=True)
    assert len(children) >= min_children, children
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 10
    while _alive(children) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = _alive(children)
    for p in left:  # clean up before failing
        p.kill()
    assert not left, [(p.pid, p.cmdline()[:4]) for p in left]


def _wait_for(cond, proc: subprocess.Popen, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not cond() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, (proc.stderr.read() if proc.stderr else "")[-2000:]
    assert cond(), "the workers did not start in time"


def test_bkd_workers_end_when_the_parent_is_killed(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(SLEEPY_BKD)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path)], stderr=subprocess.PIPE, text=True
    )
    try:
        _wait_for(lambda: len(list(tmp_path.glob("task*"))) >= 2, proc, 300)  # both busy
        _kill_9_and_check_children_go(proc, min_children=2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_conversion_workers_end_when_latency_profile_is_killed(tmp_path):
    """The issue's case: kill -9 of latency-profile while its pool converts blocks."""
    cache = tmp_path / "cache"  # empty: every block is converted, in 2 worker processes
    env = {**os.environ, "DONNA_CACHE_DIR": str(cache), "DONNA_NO_PROGRESS": "1"}
    cmd = [sys.executable, "-m", "nas.cli.latency_profile", "--space", "quick", "--limit", "8",
           "--workers", "2", "--out", str(tmp_path / "lut.json")]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    try:
        _wait_for(lambda: any(Path(cache).rglob("*.tflite")), proc, 600)  # mid-conversion
        _kill_9_and_check_children_go(proc, min_children=2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
