"""What can be wrong with a user's spec or data: each message names the thing to fix.

The CLI prints these as one or two lines without a traceback (``crmrisk/errors.py``).
"""

from __future__ import annotations

__all__ = ["DataError", "SpecError"]


class DataError(ValueError):
    """The data cannot give a dataset: unreadable file, missing column, one label class, ..."""


class SpecError(DataError):
    """A spec file that is unreadable or does not validate (the message names the field)."""
