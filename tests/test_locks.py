"""One writer at a time (nas.core.locks): a second writer of a LUT, a BKD library or a run
folder is refused at once, naming the holder; nothing the first writes is lost; a killed
holder (kill -9) leaves no stale lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from nas.core.errors import DonnaError
from nas.core.locks import (
    LockedError,
    LockError,
    WriterLock,
    lock_file_for,
    read_holder,
    writer_lock,
)

# ---- the lock module ------------------------------------------------------------------------


def test_second_writer_in_the_same_process_is_refused_with_the_holder_named(tmp_path):
    lut = tmp_path / "lut.json"
    with writer_lock(lut, "LUT") as lock:
        assert lock.held and lock.lock_file == lock_file_for(lut) == tmp_path / "lut.json.lock"
        holder = read_holder(lock.lock_file)
        assert holder is not None and holder.pid == os.getpid()
        with pytest.raises(LockedError) as err:
            with writer_lock(lut, "LUT"):
                pass
        msg = str(err.value)
        assert isinstance(err.value, DonnaError) and "\n" not in msg
        assert f"LUT {lut} is being written by this same process: pid {os.getpid()}" in msg
        assert "pytest" in msg or "python" in msg  # its command line
        assert "wait for it to finish or stop it" in msg
        with writer_lock(tmp_path / "other.json", "LUT"):  # another file: its own lock
            pass
    assert read_holder(lock_file_for(lut)) is None  # released: the file names nobody
    with writer_lock(lut, "LUT"):  # and the next writer gets it at once
        pass


def test_waiting_writer_gets_the_lock_when_the_holder_lets_go(tmp_path):
    import threading

    lut = tmp_path / "lut.json"
    first = WriterLock(lut, "LUT")
    first.acquire()
    threading.Timer(0.3, first.release).start()
    t0 = time.monotonic()
    with writer_lock(lut, "LUT", wait=30):
        assert 0.2 < time.monotonic() - t0 < 10
    with writer_lock(lut, "LUT"), pytest.raises(LockedError):
        with writer_lock(lut, "LUT", wait=0.2):
            pass


def test_lock_in_an_unwritable_place_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(LockError, match=r"cannot write LUT .*a-file/lut.json: cannot create"):
        with writer_lock(blocker / "lut.json", "LUT"):
            pass


def test_run_folder_and_bkd_library_have_one_writer(tmp_path):
    from nas.bkd.run import run_bkd
    from nas.core.spaces import get_space
    from nas.pipeline.config import RunConfig
    from nas.pipeline.run import RUN_LOCK, run_pipeline

    folder = tmp_path / "run"
    with writer_lock(folder, "run folder", lock_file=folder / RUN_LOCK):
        with pytest.raises(LockedError, match=r"run folder .*run is being written by"):
            run_pipeline(RunConfig(out=folder), echo=lambda _: None)
    assert not (folder / "run.json").exists()  # refused before anything was written
    lib = tmp_path / "bkd.json"
    with writer_lock(lib, "BKD library"):
        with pytest.raises(LockedError, match=r"BKD library .*bkd.json is being written by"):
            run_bkd(tmp_path / "no-mothernet.pt", get_space("quick"), None, lib)  # type: ignore[arg-type]
    assert not lib.exists()


# ---- real processes -------------------------------------------------------------------------

HOLD = textwrap.dedent(
    """
    import sys, time
    from nas.core.locks import writer_lock
    with writer_lock(sys.argv[1], "LUT"):
        print("holding", flush=True)
        time.sleep(600)
    """
)


def test_kill_9_of_the_holder_leaves_no_stale_lock(tmp_path):
    lut = tmp_path / "lut.json"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(lut), "--marker"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "holding"
        with pytest.raises(LockedError) as err:
            with writer_lock(lut, "LUT"):
                pass
        msg = str(err.value)
        assert f"another process: pid {proc.pid} (python" in msg and "--marker" in msg
        assert "\n" not in msg  # its command (here a multi-line -c script) on one line
        assert f"stop it (kill {proc.pid})" in msg
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    t0 = time.monotonic()
    with writer_lock(lut, "LUT"):  # at once, no waiting for a timeout
        assert time.monotonic() - t0 < 1
        assert read_holder(lock_file_for(lut)).pid == os.getpid()  # type: ignore[union-attr]


def _keys(path: Path) -> set[str]:
    return set(json.loads(path.read_text())["entries"])


def _first_keys(space: str, n: int) -> set[str]:
    from nas.core.spaces import get_space
    from nas.core.specs import spec_key

    return {spec_key(s) for s in list(dict.fromkeys(get_space(space).block_specs()))[:n]}


@pytest.mark.slow
def test_two_latency_profile_runs_on_one_lut_lose_nothing(tmp_path, cache_dir):
    """The issue's case: two runs with the same --out, started together. The one that gets
    the LUT is paused (SIGSTOP) as soon as it holds the lock, so the other surely meets it."""
    out, n = tmp_path / "lut.json", 2
    env = {**os.environ, "DONNA_CACHE_DIR": str(cache_dir), "DONNA_NO_PROGRESS": "1"}
    base = [sys.executable, "-m", "nas.cli.latency_profile", "--out", str(out),
            "--limit", str(n), "--repeats", "1", "--invokes", "3"]  # fmt: skip
    spaces = ("quick", "quick-denoise")
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    procs = {s: subprocess.Popen([*base, "--space", s], env=env, **pipes) for s in spaces}
    try:
        by_pid = {p.pid: s for s, p in procs.items()}
        deadline, holder = time.monotonic() + 300, None
        while holder is None and time.monotonic() < deadline:
            h = read_holder(lock_file_for(out))
            if h is not None and h.pid in by_pid:
                holder = by_pid[h.pid]
            else:
                time.sleep(0.01)
        assert holder is not None, "neither run took the LUT's lock"
        procs[holder].send_signal(signal.SIGSTOP)  # holds the lock, measures nothing for now
        other = next(s for s in spaces if s != holder)
        _, err = procs[other].communicate(timeout=300)
        assert procs[other].returncode == 1, err[-2000:]
        line = err.strip().splitlines()[-1]
        assert line.startswith(f"error: LUT {out} is being written by another process: pid "
                               f"{procs[holder].pid} (")  # fmt: skip
        assert "nas.cli.latency_profile" in line and f"--space {holder}" in line
        assert "wait for it to finish or stop it" in line
        procs[holder].send_signal(signal.SIGCONT)
        _, err = procs[holder].communicate(timeout=600)
        assert procs[holder].returncode == 0, err[-2000:]
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.kill()
                p.wait()
    first = json.loads(out.read_text())["entries"]
    assert set(first) == _first_keys(holder, n)  # every entry of the run that wrote
    res = subprocess.run([*base, "--space", other], env=env, capture_output=True, text=True,
                         timeout=600)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    final = json.loads(out.read_text())["entries"]
    assert len(final) == 2 * n and set(final) == _first_keys(holder, n) | _first_keys(other, n)
    assert all(final[k] == e for k, e in first.items())  # the first run's kept as they were
