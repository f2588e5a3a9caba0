"""Device names: ``host`` is this machine's CPU; anything else is an adb serial."""

from __future__ import annotations

from typing import Any, Protocol

from latency.errors import UnknownDeviceError
from latency.host import HostDevice, MeasureConfig

HOST = "host"


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
    try:
        import adbutils

        return [d.serial for d in adbutils.AdbClient().device_list()], None
    except Exception as exc:  # adb server absent or refusing: listing is best effort
        return [], f"adb server not reachable ({type(exc).__name__}: {exc})"


def list_devices() -> list[tuple[str, str]]:
    from latency.host import cpu_model

    rows = [(HOST, f"this machine's CPU ({cpu_model()}), TFLite interpreter")]
    serials, why = adb_serials()
    rows += [(s, "adb device") for s in serials]
    if why:
        rows.append(("-", why))
    return rows


def get_device(name: str, config: MeasureConfig) -> Device:
    if name == HOST:
        return HostDevice(config)
    serials, why = adb_serials()
    known = ", ".join([HOST, *serials])
    if name in serials:
        raise UnknownDeviceError(
            f"{name!r} is an attached adb device, but profiling over adb is not built yet; "
            f"use --device {HOST}"
        )
    hint = f" ({why})" if why else ""
    raise UnknownDeviceError(
        f"unknown device {name!r}; known devices: {known}{hint}. Use --device {HOST} for this "
        "machine's CPU, or attach the phone and check `adb devices`"
    )
