"""Latency-subsystem errors. Messages name the block or device and say what to do."""

from __future__ import annotations

from nas.core.errors import DonnaError


class SettingError(DonnaError, ValueError):
    """A measurement or device setting is out of range (the message says the valid range)."""


class DeviceError(DonnaError):
    """A device cannot be used (unknown, unreachable, misconfigured)."""


class UnknownDeviceError(DeviceError):
    """No device of that name or serial."""


class ConversionError(DonnaError):
    """A block could not be converted to TFLite."""


class NumericalMismatchError(ConversionError):
    """The converted model's output differs from torch's beyond the tolerance."""


class MeasurementError(DonnaError):
    """A model could not be timed."""
