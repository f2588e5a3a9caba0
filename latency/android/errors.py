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


class CoresOfflineError(DeviceError):
    """Cores donnav2 would pin ``benchmark_model`` to are offline (hot-plugged off by power
    saving or thermal limits). ``offline``: those cores; ``online``: the phone's online cores
    (``None`` if unreadable)."""

    def __init__(
        self, message: str, *, offline: tuple[int, ...] = (),
        online: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__(message)
        self.offline = offline
        self.online = online


class AdbError(DeviceError):
    """adb itself cannot be used (no server, no binary) or refused a request."""


class DeviceSelectionError(DeviceError):
    """Which phone to use is ambiguous (several attached, no serial given) or none is there."""


class DeviceDisconnectedError(DeviceError):
    """The connection to the phone was lost (cable, adbd restart, phone rebooted)."""


class DeviceTimeoutError(DeviceError):
    """The phone did not answer within the configured timeout (frozen, or far too slow)."""


class DeviceCommandError(DeviceError):
    """A command or device script on the phone failed."""


class RemotePathError(DeviceError, ValueError):
    """A path on the phone would leave the work folder, or the work folder itself is not a
    folder inside ``/data/local/tmp``."""


class PushError(DeviceError):
    """A file could not be written to the phone (permission, full storage, bad path)."""


class BenchmarkBinaryError(DeviceError):
    """The ``benchmark_model`` binary is missing, unreadable or of the wrong ABI."""


class BenchmarkFailedError(MeasurementError):
    """``benchmark_model`` crashed, exited non-zero or printed no timings for a model."""


class RunReportError(DeviceError, ValueError):
    """The text a device script printed is not in its documented format."""
