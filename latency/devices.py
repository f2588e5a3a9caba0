"""Devices by name, the one device factory, and the names of their LUT files.

Names: ``host`` is this machine's CPU; ``adb`` is the one attached phone; anything else is an
adb serial. :func:`get_device` turns a name and its settings into a :class:`Device`;
:func:`open_device` does the same for a ``with`` block and closes the device after it (a
phone's session is cleaned up). :func:`default_lut_path` names a device's LUT file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from latency.errors import UnknownDeviceError
from latency.host import HostDevice, MeasureConfig

if TYPE_CHECKING:
    from latency.android.config import AdbConfig

__all__ = [
    "ANY_PHONE",
    "HOST",
    "Device",
    "adb_serials",
    "default_lut_path",
    "get_device",
    "list_devices",
    "open_device",
    "safe_name",
]

HOST = "host"
ANY_PHONE = "adb"  # --device adb: the one attached phone (an error names them if several)


class Device(Protocol):
    """What the profiler needs of a device (host CPU or phone)."""

    name: str

    def fingerprint(self) -> dict[str, Any]: ...

    def runtime(self) -> str: ...

    def measure_settings(self) -> dict[str, Any]: ...

    def measure(
        self, models: Any, reference: Any, baseline_us: Any = None, on_done: Any = None
    ) -> Any: ...

    def close(self) -> None: ...


def safe_name(device: str) -> str:
    """A device name usable in a file name (``127.0.0.1:5555`` -> ``127.0.0.1_5555``)."""
    return re.sub(r"[^\w.-]", "_", device)


def default_lut_path(
    device: str, space: str, resolution: int | None = None, threads: int = 1
) -> Path:
    """The default LUT of ``device`` for ``space``: ``lut/DEVICE-SPACE[-rRES][-tTHREADS].json``
    (the resolution when one is given, the threads when not 1)."""
    res = f"-r{resolution}" if resolution else ""
    thr = f"-t{threads}" if threads != 1 else ""
    return Path("lut") / f"{safe_name(device)}-{space}{res}{thr}.json"


def adb_serials() -> tuple[list[str], str | None]:
    """Serials of attached adb devices, and why none could be listed (or None)."""
    from latency.android.device import attached_serials
    from latency.android.errors import AdbError

    try:
        return attached_serials(), None
    except AdbError as exc:  # adb server absent or refusing: listing is best effort
        return [], str(exc)


def list_devices() -> list[tuple[str, str]]:
    """``(name, what it is)`` of the host and of every attached phone (``--list-devices``)."""
    from latency.host import cpu_model

    rows = [(HOST, f"this machine's CPU ({cpu_model()}), TFLite interpreter")]
    serials, why = adb_serials()
    rows += [(s, "adb device (benchmark_model)") for s in serials]
    if why:
        rows.append(("-", why))
    return rows


def get_device(
    name: str, measure: MeasureConfig | None = None, adb: AdbConfig | None = None
) -> Device:
    """The device called ``name``: ``host``, ``adb`` (the one attached phone) or a serial.

    ``measure``: the measurement protocol (default :class:`MeasureConfig`); ``adb``: how to
    talk to a phone (default :class:`~latency.android.config.AdbConfig`; ignored for the
    host). A phone must be attached and online. Close the device when done (a phone keeps a
    session folder until then), or use :func:`open_device`.
    """
    if name == HOST:
        return HostDevice(measure)
    from latency.android.device import AndroidDevice, select_serial
    from latency.android.errors import AdbError, DeviceSelectionError
    from latency.android.measure import PhoneBenchmark

    try:
        serial = select_serial(None if name == ANY_PHONE else name)
    except DeviceSelectionError as exc:
        if name == ANY_PHONE:
            raise
        raise UnknownDeviceError(
            f"unknown device {name!r}: {exc}. Use --device {HOST} for this machine's CPU"
        ) from None
    except AdbError as exc:
        raise UnknownDeviceError(
            f"unknown device {name!r}; known devices: {HOST} ({exc}). Use --device {HOST} "
            "for this machine's CPU, or attach the phone and check `adb devices`"
        ) from None
    return PhoneBenchmark(AndroidDevice(serial, adb), measure)


@contextmanager
def open_device(
    name: str, measure: MeasureConfig | None = None, adb: AdbConfig | None = None
) -> Iterator[Device]:
    """:func:`get_device` for a ``with`` block: the device is closed when the block ends,
    whatever happens in it (a phone's session results are removed from it)."""
    device = get_device(name, measure, adb)
    try:
        yield device
    finally:
        device.close()
