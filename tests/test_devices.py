"""The one device factory (latency.devices): names, LUT file names, the host device."""

from __future__ import annotations

from pathlib import Path

from latency.devices import default_lut_path, get_device, open_device, safe_name
from latency.host import HostDevice, MeasureConfig


def test_host_device_from_the_factory() -> None:
    with open_device("host") as dev:
        assert isinstance(dev, HostDevice) and dev.name == "host"
        assert dev.config == MeasureConfig()
    measure = MeasureConfig(threads=2, seed=3)
    assert get_device("host", measure).config is measure


def test_lut_file_names() -> None:
    assert safe_name("127.0.0.1:5555") == "127.0.0.1_5555"
    assert safe_name("R58M12345AB") == "R58M12345AB"
    assert default_lut_path("127.0.0.1:5555", "quick") == Path("lut/127.0.0.1_5555-quick.json")
    assert default_lut_path("host", "default", 160) == Path("lut/host-default-r160.json")
    assert default_lut_path("host", "default", None, 4) == Path("lut/host-default-t4.json")
    assert default_lut_path("host", "quick", 96, 2) == Path("lut/host-quick-r96-t2.json")
