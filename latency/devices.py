"""Device names: ``host`` is this machine's CPU; ``adb`` is the one attached phone; anything
else is an adb serial."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from latency.errors import UnknownDeviceError
from latency.host import HostDevice, MeasureConfig

if TYPE_CHECKING:
    from latency.android.device import AdbConfig

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


def adb_serials() -> tuple[list[str], str | None]:
    """Serials of attached adb devices, and why none could be listed (or None)."""
    from latency.android.device import attached_serials
    from latency.android.errors import AdbError

    try:
        return attached_serials(), None
    except AdbError as exc:  # adb server absent or refusing: listing is best effort
        return [], str(exc)


def list_devices() -> list[tuple[str, str]]:
    from latency.host import cpu_model

    rows = [(HOST, f"this machine's CPU ({cpu_model()}), TFLite interpreter")]
    serials, why = adb_serials()
    rows += [(s, "adb device (benchmark_model)") for s in serials]
    if why:
        rows.append(("-", why))
    return rows


def get_device(name: str, config: MeasureConfig, adb: AdbConfig | None = None) -> Device:
    """The device called ``name``: ``host``, ``adb`` (the one attached phone) or a serial."""
    if name == HOST:
        return HostDevice(config)
    from latency.android.device import AndroidDevice, select_serial
    from latency.android.errors import AdbError, DeviceSelectionError

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
    return AndroidDevice(serial, config, adb)
