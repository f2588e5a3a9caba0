"""Domain exceptions shared by every part of donnav2.

Library code raises these; only the command-line front ends turn them into messages.
Every message names the problem and the fix.
"""

from __future__ import annotations


class DonnaError(Exception):
    """Base class of every error donnav2 raises on purpose."""


class SpecError(DonnaError, ValueError):
    """A block spec or an architecture is invalid."""


class SpaceError(DonnaError, ValueError):
    """A search space name or a choice inside a space is invalid."""


class DataError(DonnaError):
    """A task or data source is unknown, missing or in the wrong format."""


class MothernetError(DonnaError):
    """A mothernet (checkpoint, configuration or network) is invalid or does not fit."""


class BkdError(DonnaError, ValueError):
    """A blockwise-knowledge-distillation setting or run is invalid."""


class FilterError(DonnaError, ValueError):
    """The BKD filter cannot run as asked (library of another mothernet or space, missing
    options, a filtered-space file that does not belong to the library)."""


class SearchError(DonnaError, ValueError):
    """The architecture search cannot run as asked (budget below the fastest model, a Pareto
    file or index that does not exist, a space too large to enumerate)."""


class PipelineError(DonnaError):
    """``donna run`` cannot run as configured (settings, run folder, picks)."""


class TrainDeviceError(DonnaError, ValueError):
    """A training device or precision that is unknown or not available here."""
