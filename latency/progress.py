"""One helper for progress bars: tqdm on stderr; ``DONNA_NO_PROGRESS=1`` silences them."""

from __future__ import annotations

import os
from typing import Any


def progress_bar(total: int, desc: str, unit: str = "block") -> Any:
    from tqdm import tqdm

    disabled = os.environ.get("DONNA_NO_PROGRESS", "") not in ("", "0")
    return tqdm(total=total, desc=desc, unit=unit, disable=disabled, dynamic_ncols=True)
