"""LUT errors. Each message names the file, the problem and the fix."""

from __future__ import annotations

from nas.core.errors import DonnaError


class LutError(DonnaError):
    """Base class of LUT errors."""


class LutCorruptError(LutError):
    """The file is not a readable LUT (truncated, not JSON, wrong structure)."""


class LutSchemaError(LutError):
    """The file is a LUT of a schema version this program does not know."""


class LutMismatchError(LutError):
    """The LUT was measured on another device or with other settings than asked for."""


class LutMissError(LutError, KeyError):
    """Blocks are missing from the LUT."""

    def __init__(self, message: str, missing: list[str]) -> None:
        super().__init__(message)
        self.missing = missing

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class LutWriteError(LutError):
    """The LUT cannot be written where asked."""
