"""Every setting donnav2 reads from the environment, in one place (listed in the README).

=====================  ====================================================================
``DONNA_CACHE_DIR``    root of the caches: converted models (``tflite/``), decoded data sets
                       (``data/``) and the phone benchmark binary (``benchmark_model/``);
                       default ``$XDG_CACHE_HOME/donnav2``, else ``~/.cache/donnav2``
``DONNA_NO_PROGRESS``  ``1`` silences progress bars
``DONNA_DEBUG``        ``1`` shows tracebacks instead of one-line errors
=====================  ====================================================================

Values are read when asked for (never at import), so a test or a caller can set them late.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_DIR = "DONNA_CACHE_DIR"
NO_PROGRESS = "DONNA_NO_PROGRESS"
DEBUG = "DONNA_DEBUG"


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def cache_root() -> Path:
    """``$DONNA_CACHE_DIR``, else ``$XDG_CACHE_HOME/donnav2``, else ``~/.cache/donnav2``."""
    env = os.environ.get(CACHE_DIR)
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "donnav2"


def cache_dir(kind: str) -> Path:
    """The cache folder of one ``kind``: ``tflite``, ``data`` or ``benchmark_model``."""
    return cache_root() / kind


def progress_disabled() -> bool:
    return _flag(NO_PROGRESS)


def debug() -> bool:
    return _flag(DEBUG)
