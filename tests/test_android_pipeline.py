"""``donna run --device SERIAL`` reaches the phone through the one device factory."""

from __future__ import annotations

import pytest
from adb_emulator.standin import STANDIN_BINARY

from nas.pipeline.config import RunConfig
from nas.pipeline.stages import RunContext

pytestmark = pytest.mark.adb


def test_run_device_option_gives_the_phone_with_its_binary(phone, tmp_path) -> None:
    cfg = RunConfig(device=phone.serial, out=tmp_path, benchmark_binary=STANDIN_BINARY,
                    cooldown_s=0.0)
    with RunContext(cfg).open_device() as dev:
        assert dev.fingerprint()["model"] == "SM-G973F"
        assert dev.adb.binary == STANDIN_BINARY and dev.adb.cooldown_s == 0.0
        assert cfg.lut_path().name == f"{phone.serial.replace(':', '_')}-quick.json"
        results = phone.host_path(dev.phone.new_result_file()).parent
        assert results.is_dir()
    assert not results.exists()  # the session was cleaned up when the block ended
