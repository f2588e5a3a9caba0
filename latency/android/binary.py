"""The ``benchmark_model`` binary: where it is, and whether it runs on a phone's ABI.

The official prebuilt is TFLite's nightly ``android_aarch64_benchmark_model`` (see
:data:`DOWNLOAD_URL`). It is given with ``--benchmark-binary PATH`` or found in the cache
folder (:func:`default_binary_dir`); if it is missing the error says how to get it. Its ELF
header names its machine, checked against the phone's ``ro.product.cpu.abilist`` before
anything is pushed. A ``#!`` script is accepted as ABI-neutral (a wrapper around the real
binary, or the test suite's stand-in).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from latency.android.errors import BenchmarkBinaryError
from nas.core.files import file_sha256

__all__ = [
    "BINARY_NAME",
    "DOWNLOAD_URL",
    "BenchmarkBinary",
    "check_abi",
    "default_binary_dir",
    "elf_abi",
    "find_benchmark_binary",
]

BINARY_NAME = "android_aarch64_benchmark_model"
DOWNLOAD_URL = (
    "https://storage.googleapis.com/tensorflow-nightly-public/prod/tensorflow/release/lite/"
    "tools/nightly/latest/android_aarch64_benchmark_model"
)
SCRIPT = "script"  # the "ABI" of a #! script: runs on any phone

# ELF e_machine -> Android ABI name (64-bit class unless noted)
_MACHINES = {(183, 2): "arm64-v8a", (40, 1): "armeabi-v7a", (62, 2): "x86_64", (3, 1): "x86",
             (243, 2): "riscv64"}


def default_binary_dir() -> Path:
    """``$DONNA_CACHE_DIR/benchmark_model`` or ``~/.cache/donnav2/benchmark_model``."""
    from nas.core.settings import cache_dir

    return cache_dir("benchmark_model")


def elf_abi(head: bytes) -> str | None:
    """The Android ABI an executable's first bytes say it is for: ``"arm64-v8a"``,
    ``"armeabi-v7a"``, ``"x86_64"``, ``"x86"``, ``"riscv64"``, :data:`SCRIPT` for ``#!``
    scripts, ``None`` when it is neither ELF nor a script (or an ELF of another machine)."""
    if head.startswith(b"#!"):
        return SCRIPT
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    elf_class, data = head[4], head[5]
    order = "little" if data == 1 else "big"
    machine = int.from_bytes(head[18:20], order)
    return _MACHINES.get((machine, elf_class))


def check_abi(binary_abi: str | None, abilist: Sequence[str], binary: Path | str) -> None:
    """Refuse a binary the phone cannot run (the message says which one it needs)."""
    if binary_abi == SCRIPT:
        return
    supported = [a for a in abilist if a]
    if binary_abi is None:
        raise BenchmarkBinaryError(
            f"{binary} is not an executable for Android (no ELF header of a known machine); "
            f"download the {BINARY_NAME} prebuilt: {DOWNLOAD_URL}"
        )
    if binary_abi not in supported:
        raise BenchmarkBinaryError(
            f"{binary} is built for {binary_abi}, but the phone runs "
            f"{', '.join(supported) or 'an unknown ABI'}; use the benchmark_model prebuilt "
            f"for {supported[0] if supported else 'its ABI'} (for arm64-v8a: {DOWNLOAD_URL})"
        )


@dataclass(frozen=True)
class BenchmarkBinary:
    path: Path
    abi: str
    sha256: str

    @property
    def short_hash(self) -> str:
        return self.sha256[:12]


def find_benchmark_binary(
    given: Path | str | None, cache_dir: Path | None = None
) -> BenchmarkBinary:
    """The binary to use: ``given``, else ``CACHE/android_aarch64_benchmark_model``."""
    folder = Path(cache_dir) if cache_dir is not None else default_binary_dir()
    path = Path(given).expanduser() if given is not None else folder / BINARY_NAME
    if not path.is_file():
        where = f"{path} does not exist" if given is not None else (
            f"no benchmark_model binary was given (--benchmark-binary) and {path} does not exist"
        )
        raise BenchmarkBinaryError(
            f"{where}. Get TFLite's official prebuilt and put it there:\n"
            f"  mkdir -p {folder} && curl -L -o {folder / BINARY_NAME} \\\n"
            f"    {DOWNLOAD_URL}\n"
            "or pass --benchmark-binary PATH (see docs/phone.md)"
        )
    try:
        with open(path, "rb") as f:
            head = f.read(64)
        sha256 = file_sha256(path)
    except OSError as exc:
        raise BenchmarkBinaryError(f"cannot read the benchmark binary {path}: {exc}") from None
    abi = elf_abi(head)
    if abi is None:
        check_abi(None, (), path)  # raises with the download hint
    assert abi is not None
    if not os.access(path, os.R_OK):
        raise BenchmarkBinaryError(f"cannot read the benchmark binary {path}")
    return BenchmarkBinary(path=path, abi=abi, sha256=sha256)
