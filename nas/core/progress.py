"""One helper for progress bars: tqdm on stderr; ``DONNA_NO_PROGRESS=1`` silences them."""

from __future__ import annotations

from typing import Any

from nas.core.settings import progress_disabled


def progress_bar(total: int, desc: str, unit: str = "block") -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=progress_disabled(), dynamic_ncols=True)
