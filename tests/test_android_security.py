"""Hostile names reach the phone as literal names, and nothing is written outside the work
folder. Real adb server, adbutils, our device class and scripts, the emulated phone's shell."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from adb_emulator.standin import STANDIN_BINARY

from latency.android.config import AdbConfig
from latency.android.device import AndroidDevice
from latency.android.measure import PhoneBenchmark
from latency.convert import Converter
from latency.host import REFERENCE_SPEC, MeasureConfig
from nas.core.spaces import get_space

HOSTILE = "it's a \"test\"; touch HACKED $(touch HACKED2) `touch HACKED3` & | <x> *"
FAST = MeasureConfig(warmup=1, repeats=2, invokes=3, max_extra_rounds=0)


def snapshot(root: Path, skip: Path) -> dict[str, tuple[int, int]]:
    """Every file of the phone's writable folders outside ``skip``: path -> (size, mtime)."""
    seen = {}
    for top in ("data/local/tmp", "sdcard"):
        for folder, dirs, files in os.walk(root / top):
            if Path(folder) == skip or skip in Path(folder).parents:
                dirs.clear()
                continue
            for name in files + dirs:
                p = Path(folder) / name
                if p != skip:
                    st = p.lstat()
                    seen[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return seen


@pytest.mark.adb
def test_hostile_model_and_folder_names_stay_literal(phone, convert_config, tmp_path) -> None:
    spec = get_space("quick").block_specs()[0]
    conv = Converter(convert_config)
    model = tmp_path / f"{HOSTILE}.tflite"
    shutil.copy(conv.convert(spec).path, model)
    work = f"/data/local/tmp/{HOSTILE.replace('*', 'star')} dir"
    root = phone.host_path("/")
    before = snapshot(root, phone.host_path(work))
    adb = AdbConfig(io_timeout_s=10, run_timeout_s=20, cooldown_s=0, min_secs=0,
                    binary=STANDIN_BINARY, work_dir=work)
    with PhoneBenchmark(AndroidDevice(phone.serial, adb), FAST) as dev:
        res = dev.measure([("k", model)], conv.convert(REFERENCE_SPEC).path)
        remote = dev.phone.push_model(model)
        assert res["k"].warm.median_us > 0
        assert remote.startswith(work + "/models/") and remote.endswith(f"/{HOSTILE}.tflite")
        assert phone.host_path(remote).read_bytes() == model.read_bytes()
    # nothing ran: no HACKED* file anywhere on the phone, and no other file changed
    assert not [p for p in root.rglob("HACKED*")]
    assert snapshot(root, phone.host_path(work)) == before
    assert (phone.host_path(work) / "models").is_dir()


def test_work_folder_and_names_cannot_leave_the_work_folder() -> None:
    for bad in ("/data/local/tmp/../../system", "/sdcard/donna", "data/local/tmp/x",
                "/data/local/tmp", "/data/local/tmp/a\nb"):
        with pytest.raises(ValueError, match="inside /data/local/tmp/"):
            AdbConfig(work_dir=bad)
    dev = AndroidDevice("R58M12345AB", AdbConfig())
    for part in ("..", ".", "a/b", "", "x\ny"):
        with pytest.raises(ValueError, match="cannot be a file name on the phone"):
            dev._remote("models", part)
    assert dev._remote("models", "$(id);`x`") == "/data/local/tmp/donnav2/models/$(id);`x`"
