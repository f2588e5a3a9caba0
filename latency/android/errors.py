"""Errors of the Android side. Messages name the problem and say what to do."""

from __future__ import annotations

from latency.errors import DeviceError, MeasurementError


class BenchmarkOutputError(MeasurementError):
    """``benchmark_model`` output holds no usable timings (crash, tool error, garbage).

    ``tail`` keeps the last lines of the output, ``reason`` the first line that looks like
    the tool's own error message (or ``None``).
    """

    def __init__(self, message: str, *, tail: tuple[str, ...] = (), reason: str | None = None):
        super().__init__(message)
        self.tail = tail
        self.reason = reason


class DeviceInfoError(DeviceError, ValueError):
    """Device-info text from a device script is malformed, or a core list is invalid."""
