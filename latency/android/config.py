"""How donnav2 talks to phones: :class:`AdbConfig` (timeouts, cooldown and thermal gate,
benchmark binary, the work folder, the cores to pin to) and the rule for the work folder.
Defaults live here only; the CLIs read them for their option defaults."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path

from latency.android.errors import RemotePathError
from latency.errors import SettingError

__all__ = ["WORK_ROOT", "AdbConfig", "check_work_dir"]

WORK_ROOT = "/data/local/tmp"


@dataclass(frozen=True)
class AdbConfig:
    """How to talk to phones. Defaults are defined here only (the CLI reads them)."""

    io_timeout_s: float = 30.0
    """Longest wait for any answer of the phone (a frozen phone fails after this)."""
    run_timeout_s: float = 300.0
    """Longest benchmark_model run; the phone kills it after this, the host waits this long
    (plus io_timeout_s) for the next sign of life while a model runs."""
    cooldown_s: float = 5.0
    """Sleep on the phone between two models."""
    gate_timeout_s: float = 180.0
    """Longest wait for the thermal gate (watched zones at or below the profile's cooldown
    temperature) before a model; a model started hot is flagged throttled."""
    min_secs: float = 0.5
    """benchmark_model --min_secs and --warmup_min_secs (each phase runs at least this long)."""
    work_dir: str = f"{WORK_ROOT}/donnav2"
    binary: Path | None = None
    """benchmark_model to push (default: found in the cache folder, see binary.py)."""
    binary_dir: Path | None = None
    max_failures: int = 3
    """Stop after this many models failed in a row before any succeeded (a broken binary)."""
    throttle_retries: int = 1
    """Re-runs of a model whose runs were throttled (after a cooldown) before flagging it."""
    cores: tuple[int, ...] | None = None
    """Cores to pin benchmark_model to instead of the profile's big cores (``--cores``; kept
    sorted and unique). ``None``: the profile's. Either way every one must be online."""

    def __post_init__(self) -> None:
        if min(self.io_timeout_s, self.run_timeout_s) <= 0 or self.cooldown_s < 0:
            raise SettingError("adb timeouts must be > 0 and the cooldown >= 0")
        check_work_dir(self.work_dir)
        if self.cores is not None:
            cores = tuple(self.cores)
            if not cores or any(
                not isinstance(c, int) or isinstance(c, bool) or c < 0 for c in cores
            ):
                raise SettingError(
                    f"cores must be core numbers (the N of /sys/devices/system/cpu/cpuN), "
                    f"got {self.cores!r}; e.g. --cores 4-7"
                )
            object.__setattr__(self, "cores", tuple(sorted(set(cores))))


def check_work_dir(work_dir: str) -> str:
    """The work folder, normalised; it must be a folder under /data/local/tmp."""
    norm = posixpath.normpath(work_dir)
    if (
        not work_dir.startswith("/")
        or norm != work_dir.rstrip("/")
        or not norm.startswith(WORK_ROOT + "/")
        or any(c in work_dir for c in "\n\0")
    ):
        raise RemotePathError(
            f"the phone work folder must be a normalised path inside {WORK_ROOT}/ (no '..', "
            f"no line breaks), got {work_dir!r}"
        )
    return norm
