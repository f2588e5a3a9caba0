"""Reading donnav2's own versioned JSON files (BKD library, filtered space, Pareto front):
one place for the checks and for the messages that name the command that makes the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nas.errors import DonnaError


def read_versioned_json(
    path: str | Path,
    *,
    schema: str,
    version: int,
    what: str,
    made_by: str,
    error: type[DonnaError],
) -> dict[str, Any]:
    """The content of ``path`` when it is a readable JSON object of ``schema`` and ``version``;
    else ``error`` saying what is wrong and that ``made_by`` (e.g. "`donna bkd`") makes it."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist; make it with {made_by}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{what} {path} is not readable JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("schema") != schema:
        raise error(
            f"{path} is not a {what} (schema {schema!r} expected); pass the JSON written by "
            f"{made_by}"
        )
    if data.get("version") != version:
        raise error(
            f"{what} {path} has version {data.get('version')}, this donnav2 reads version "
            f"{version}; run {made_by} again"
        )
    return data
