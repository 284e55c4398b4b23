"""What every settings section shares: frozen, and a misspelt field is an error."""

from __future__ import annotations

from pydantic import ConfigDict

__all__ = ["FROZEN"]

FROZEN = ConfigDict(frozen=True, extra="forbid")
