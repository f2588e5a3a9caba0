from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("DONNA_NO_PROGRESS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One converted-model cache for the whole test session (conversion is the slow part)."""
    return tmp_path_factory.mktemp("tflite-cache")


@pytest.fixture(scope="session")
def convert_config(cache_dir: Path):
    from latency.convert import ConvertConfig

    return ConvertConfig(cache_dir)


@pytest.fixture(scope="session")
def fast_measure():
    """A short measurement protocol for tests (the statistics are still real)."""
    from latency.host import MeasureConfig

    return MeasureConfig(warmup=3, repeats=3, invokes=10, window=4, max_extra_rounds=2)


# The emulated phone and a private real adb server (tests/adb_emulator/).
from adb_emulator.fixtures import adb_server, emulated_device, phone  # noqa: E402, F401
