"""``donna run --device SERIAL`` reaches the phone through the one device class."""

from __future__ import annotations

import pytest
from adb_emulator.standin import STANDIN_BINARY

from nas.pipeline import Pipeline, RunConfig

pytestmark = pytest.mark.adb


def test_run_device_option_gives_the_phone_with_its_binary(phone, tmp_path) -> None:
    cfg = RunConfig(device=phone.serial, out=tmp_path, benchmark_binary=STANDIN_BINARY,
                    cooldown_s=0.0)
    dev = Pipeline(cfg).device()
    try:
        assert dev.fingerprint()["model"] == "SM-G973F"
        assert dev.adb.binary == STANDIN_BINARY and dev.adb.cooldown_s == 0.0
        assert cfg.lut_path().name == f"{phone.serial.replace(':', '_')}-quick.json"
    finally:
        dev.close()
