"""Small file helpers every layer uses: the one atomic writer, the one file hash, and the one
reader of donnav2's own versioned JSON files (BKD library, filtered space, Pareto front)."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from nas.core.errors import DonnaError


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Write ``path`` through ``write(binary_file)`` so that readers see the old or the new
    content, never half: a temp file in the same folder, fsync, rename, fsync of the folder.
    On any failure the temp file is removed and the old content stays."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _file_mode(path))  # mkstemp makes 0600; keep what open() would give
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return path
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    return path


@functools.cache
def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _file_mode(path: Path) -> int:
    """The mode of the file being replaced, else that of a new file (0666 less the umask)."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return 0o666 & ~_umask()


def atomic_write_text(path: str | Path, text: str) -> Path:
    """:func:`atomic_write` of UTF-8 text."""
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's content, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class OutputPathError(DonnaError):
    """An output file or folder cannot be written where asked."""


def check_writable(
    path: str | Path,
    what: str,
    *,
    folder: bool = False,
    fix: str = "choose another --out or fix the folder's permissions",
    error: type[DonnaError] = OutputPathError,
) -> Path:
    """Refuse, before any work, an output that cannot be written: ``path`` is a file to write
    (or, with ``folder``, a folder to create or write into). Missing folders on the way are
    fine (the writers create them); a file where a folder is needed, a folder where a file
    is needed, or a folder that refuses a new file (tried for real, so a read-only mount or
    a root-owned folder counts) raises ``error``: ``cannot write WHAT PATH: REASON; FIX``.
    Nothing is left behind. Returns ``path``."""
    path = Path(path)
    reason = _unwritable_reason(path, folder)
    if reason is not None:
        raise error(f"cannot write {what} {path}: {reason}; {fix}")
    return path


def _unwritable_reason(path: Path, folder: bool) -> str | None:
    try:
        if folder and path.exists() and not path.is_dir():
            return "it is a file, not a folder"
        if not folder and path.is_dir():
            return "it is a folder, not a file"
        here = path if folder else path.parent
        while not here.exists():  # exists() is False under a file too (ENOTDIR)
            here = here.parent
        if not here.is_dir():
            return f"{here} is a file, not a folder"
    except OSError as exc:  # e.g. a folder on the way that may not be searched
        return f"{exc.strerror or exc} ({exc.filename or path})"
    try:
        fd, probe = tempfile.mkstemp(prefix=".donna-write-check.", dir=here)
    except OSError as exc:
        return f"folder {here} takes no new files ({exc.strerror or exc})"
    os.close(fd)
    os.unlink(probe)
    return None


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
