"""kill -9 in the middle of profiling loses at most the blocks being timed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from lut import LatencyTable
from nas.core.spaces import get_space
from nas.core.specs import spec_key

pytestmark = pytest.mark.slow


def _count(path) -> int:
    try:
        return len(json.loads(path.read_text())["entries"])
    except (OSError, ValueError, KeyError):
        return -1


def _default_sigint() -> None:
    """In the child: Ctrl-C as in a terminal, even when the tests run in a background job
    (whose commands start with SIGINT ignored, so Python would never see it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _profile_command(out, cache_dir) -> tuple[dict, list[str]]:
    """The profiling run both tests interrupt: the first 20 quick blocks, slow enough to hit."""
    env = {**os.environ, "DONNA_CACHE_DIR": str(cache_dir), "DONNA_NO_PROGRESS": "1"}
    cmd = [sys.executable, "-m", "nas.cli.latency_profile", "--space", "quick", "--out", str(out)]
    return env, [*cmd, "--limit", "20", "--repeats", "6"]


def test_kill_9_then_resume(tmp_path, cache_dir):
    out = tmp_path / "lut.json"
    env, cmd = _profile_command(out, cache_dir)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600
    while _count(out) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    survived = LatencyTable.load(out)  # never torn: valid JSON with every finished entry
    n = len(survived)
    assert 2 <= n < 20
    done = dict(survived.entries)
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-2000:]
    final = LatencyTable.load(out)
    first20 = {spec_key(s) for s in get_space("quick").block_specs()[:20]}
    assert set(final.entries) == first20
    for k, e in done.items():  # what survived the kill was kept, not measured again
        assert final.entries[k] == e
    assert f"{n} already in the LUT, {20 - n} measured now" in res.stderr


def test_ctrl_c_keeps_finished_entries_and_says_how_to_resume(tmp_path, cache_dir):
    out = tmp_path / "lut.json"
    env, cmd = _profile_command(out, cache_dir)
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        preexec_fn=_default_sigint,
    )  # fmt: skip
    deadline = time.monotonic() + 600
    while _count(out) < 1 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted" in err and "run the same command again" in err
    assert len(LatencyTable.load(out)) >= 1
