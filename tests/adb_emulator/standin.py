"""The stand-in ``benchmark_model`` of the emulated phone, and what the device needs to run it.

The real tool is an ``android_aarch64`` ELF that cannot run here, so tests push
``standin/benchmark_model`` instead: a POSIX sh script that runs ``standin/benchmark_model.py``
with this machine's Python and TFLite runtime (``ai_edge_litert``, which starts in 0.2 s where
TensorFlow takes 5 s, and runs the same TFLite kernels). It takes the real tool's flags and
prints the real tool's output format, so everything that parses it is tested for real.

The device sees that runtime read-only under ``/opt/donna`` (:data:`STANDIN_ROOT`), through
``EmulatedDevice(host_dirs=standin_host_dirs())``. Faults are injected with
:func:`set_benchmark_fault` (read by the stand-in at every start).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy

HERE = Path(__file__).resolve().parent
STANDIN_BINARY = HERE / "standin" / "benchmark_model"
STANDIN_ROOT = "opt/donna"
FAULT_FILE = "/system/etc/benchmark_model_fault"
SLEEPING_FILE = "/data/local/tmp/benchmark_model.sleeping"


def standin_host_dirs() -> dict[str, Path]:
    """Device folder -> host folder the stand-in needs: Python, site-packages, its script."""
    return {
        f"{STANDIN_ROOT}/python": Path(sys.base_prefix),
        f"{STANDIN_ROOT}/site-packages": Path(numpy.__file__).resolve().parents[1],
        f"{STANDIN_ROOT}/standin": HERE / "standin",
    }


def set_benchmark_fault(phone: object, rule: str | None) -> None:
    """Make the stand-in fail (``crash MATCH``, ``exit MATCH CODE``, ``sleep MATCH SECONDS``,
    MATCH a substring of the model path or ``*``), or behave again with ``None``."""
    path = phone.host_path(FAULT_FILE)  # type: ignore[attr-defined]
    if rule is None:
        path.unlink(missing_ok=True)
    else:
        path.write_text(rule + "\n")


def when_sleeping(phone: object, action: Callable[[], object], timeout: float = 60.0) -> None:
    """Call ``action`` (in a thread) as soon as the stand-in sleeps for a ``sleep`` fault, i.e.
    in the middle of a run, after ``taskset`` pinned it."""
    marker = phone.host_path(SLEEPING_FILE)  # type: ignore[attr-defined]
    marker.unlink(missing_ok=True)

    def wait() -> None:
        deadline = time.monotonic() + timeout
        while not marker.exists():
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)
        action()

    threading.Thread(target=wait, name="standin-when-sleeping", daemon=True).start()


def profile_args(
    phone: object, out: Path, cache_dir: Path, limit: int, *extra: str
) -> list[str]:
    """``latency-profile`` arguments for a short, real profile of the quick space on the
    emulated phone with the stand-in binary (tiny blocks, 2 runs of 3 invokes, no cooldown)."""
    return [
        "--device", phone.serial, "--space", "quick", "--limit", str(limit),  # type: ignore[attr-defined]
        "--out", str(out), "--cache-dir", str(cache_dir), "--benchmark-binary",
        str(STANDIN_BINARY), "--repeats", "2", "--invokes", "3", "--min-secs", "0",
        "--cooldown", "0", "--adb-timeout", "3", "--run-timeout", "10", *extra,
    ]


def block_model_names(cache_dir: Path, n: int) -> list[str]:
    """File names of the first ``n`` quick-space blocks' converted models (what the phone's
    command lines contain), converting them if needed."""
    from latency.convert import ConvertConfig, convert_many
    from nas.core.spaces import get_space

    specs = get_space("quick").block_specs()[:n]
    done, failed = convert_many(specs, ConvertConfig(cache_dir), 1)
    assert not failed, failed
    return [done[s].path.name for s in specs]
