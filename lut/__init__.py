"""Per-device latency lookup tables keyed by block specs."""

from lut.errors import (
    LutCorruptError,
    LutError,
    LutMismatchError,
    LutMissError,
    LutSchemaError,
    LutWriteError,
)
from lut.table import SCHEMA, SCHEMA_VERSION, LatencyTable, compare_tables

__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "LatencyTable",
    "LutCorruptError",
    "LutError",
    "LutMismatchError",
    "LutMissError",
    "LutSchemaError",
    "LutWriteError",
    "compare_tables",
]
