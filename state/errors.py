"""What can go wrong at the state boundary."""

from __future__ import annotations

__all__ = ["StateError"]


class StateError(RuntimeError):
    """Redis failed or returned something the store cannot read; wraps the cause with ``from``."""
