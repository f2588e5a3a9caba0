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


def load_bench_script(name: str):
    """``bench/NAME.py`` imported as a module (the benchmarks are scripts, not a package)."""
    import importlib.util
    import sys

    path = Path(__file__).resolve().parents[1] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def bench_script():
    """:func:`load_bench_script`, for tests of the benchmarks' own arithmetic."""
    return load_bench_script


@pytest.fixture(scope="session")
def fast_measure():
    """A short measurement protocol for tests (the statistics are still real)."""
    from latency.host import MeasureConfig

    return MeasureConfig(warmup=3, repeats=3, invokes=10, window=4, max_extra_rounds=2)


# The emulated phone and a private real adb server (tests/adb_emulator/).
from adb_emulator.fixtures import adb_server, emulated_device, phone  # noqa: E402, F401

# The tiny sizes of a `donna run` made by tests: every stage real, seconds each.
TINY_RUN_SETS = {
    "train_limit": 300,
    "val_limit": 100,
    "mothernet_epochs": 0.5,
    "bkd_epochs": 0.5,
    "bkd_train_samples": 128,
    "bkd_val_samples": 64,
    "finetune_epochs": 0.2,
    "finals": 2,
    "hil_models": 2,
    "pop_size": 16,
    "generations": 4,
}


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Path:
    """One finished tiny classification `donna run` folder on the host, for the experiments'
    tests. Read-only by convention: a test that writes into it copies it first
    (:func:`copy_run`)."""
    from nas.cli.donna import main

    root = tmp_path_factory.mktemp("finished-run")
    out, lut = root / "run", root / "lut.json"
    sets = [a for k, v in TINY_RUN_SETS.items() for a in ("--set", f"{k}={v}")]
    args = ["run", "--task", "classification", "--out", str(out), "--lut", str(lut)]
    old = os.environ.get("DONNA_CACHE_DIR")
    os.environ["DONNA_CACHE_DIR"] = str(cache_dir)
    try:
        assert main([*args, "--workers", "1", *sets]) == 0
    finally:
        if old is None:
            os.environ.pop("DONNA_CACHE_DIR", None)
        else:
            os.environ["DONNA_CACHE_DIR"] = old
    return out


def copy_run(run: Path, dest: Path) -> Path:
    """A copy of a run folder (its LUT path in run.json points at the same LUT)."""
    import shutil

    return Path(shutil.copytree(run, dest / "run"))
