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
