"""On-disk cache of decoded datasets (``.npy`` files), keyed by the source file's identity."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

CACHE_VERSION = 1  # bump when a decoder changes what it produces: old entries are ignored


def default_cache_dir() -> Path:
    """``$DONNA_CACHE_DIR/data``, else ``$XDG_CACHE_HOME/donnav2/data`` (``~/.cache/...``)."""
    from nas.core.settings import cache_dir

    return cache_dir("data")


def source_key(name: str, path: Path) -> str:
    """A cache key for ``path``: its resolved location, size and mtime (plus the decoder)."""
    stat = path.stat()
    ident = f"{CACHE_VERSION}|{name}|{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    return f"{name}-{hashlib.sha256(ident.encode()).hexdigest()[:16]}"


def load_arrays(cache_dir: Path, key: str, names: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """The cached arrays ``names`` of ``key``, or ``None`` when any is missing or unreadable."""
    arrays = {}
    for name in names:
        file = cache_dir / f"{key}.{name}.npy"
        try:
            arrays[name] = np.load(file, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError):
            return None
    return arrays


def save_arrays(cache_dir: Path, key: str, arrays: dict[str, np.ndarray]) -> None:
    """Store arrays atomically (temp file + rename); a failure to cache is not an error."""
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError:
        return
    for name, array in arrays.items():
        file = cache_dir / f"{key}.{name}.npy"
        tmp = file.with_name(f"{file.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as handle:
                np.save(handle, np.asarray(array, order="C"), allow_pickle=False)
            os.replace(tmp, file)
        except OSError:
            tmp.unlink(missing_ok=True)
            return


def progress(total: int, desc: str) -> Any:
    """A tqdm bar on stderr (``DONNA_NO_PROGRESS=1`` silences it)."""
    from nas.core.progress import progress_bar

    return progress_bar(total, desc, unit="img")
