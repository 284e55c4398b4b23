"""Which model version is live per domain, and every change to it, in Redis.

The pointer is the source of truth for "current": the registry on disk holds every version,
``risk.model-updates`` only announces changes, and a worker that missed a message still finds
the right version here. A move is one Lua call (``model_pointer.lua``) that checks the expected
current version, sets the new one and appends to the history, so two writers (the trainer
promoting, an operator rolling back) cannot interleave: the loser gets ``PointerConflict``.

Keys: ``{prefix}:model:{domain}:current`` (hash) and ``{prefix}:model:{domain}:history`` (list,
newest first, capped). Only this class builds them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources

import redis

from state.errors import StateError

__all__ = ["ANY", "ModelPointer", "PointerChange", "PointerConflict", "PointerError"]

ANY = "*"  # ``expected`` value that skips the compare-and-set guard


class PointerError(StateError):
    """Redis failed while reading or moving a model pointer."""


class PointerConflict(PointerError):
    """The pointer was not at the expected version; nothing was written."""

    def __init__(self, domain: str, expected: str | None, actual: str | None) -> None:
        super().__init__(f"{domain}: expected current version {expected!r}, found {actual!r}")
        self.domain = domain
        self.expected = expected
        self.actual = actual


@dataclass(frozen=True)
class PointerChange:
    """One move of a domain's pointer: to ``version`` from ``previous`` (None for the first)."""

    domain: str
    version: str
    previous: str | None
    changed_at: datetime
    reason: str


class ModelPointer:
    """The "current" model version per domain, with its change history.

    Parameters
    ----------
    client
        A ``redis.Redis`` client (bytes or decoded responses both work).
    key_prefix
        Prefix of every key written (``RISK_REDIS__KEY_PREFIX``).
    history_limit
        Changes kept per domain; older ones are trimmed.
    """

    def __init__(self, client: redis.Redis, key_prefix: str, history_limit: int) -> None:
        if history_limit < 1:
            raise ValueError(f"history_limit must be >= 1, got {history_limit}")
        self._client = client
        self._prefix = key_prefix
        self._history_limit = history_limit
        source = resources.files("state").joinpath("model_pointer.lua").read_text()
        self._move = client.register_script(source)

    def _key(self, domain: str, part: str) -> str:
        return f"{self._prefix}:model:{domain}:{part}"

    def current(self, domain: str) -> str | None:
        """The live version of ``domain``, or None if none was ever set."""
        try:
            value = self._client.hget(self._key(domain, "current"), "version")
        except redis.RedisError as exc:
            raise PointerError(f"reading the model pointer of {domain}: {exc}") from exc
        return _text(value) or None

    def set(
        self,
        domain: str,
        version: str,
        reason: str,
        *,
        expected: str | None = ANY,
        now: datetime | None = None,
    ) -> PointerChange:
        """Point ``domain`` at ``version``; refused with ``PointerConflict`` unless the pointer
        is at ``expected`` (``ANY`` skips the check, ``None`` means "no version yet")."""
        if not version or version == ANY:
            raise ValueError(f"invalid version {version!r}")
        changed_at = (now or datetime.now(UTC)).astimezone(UTC)
        guard = ANY if expected == ANY else (expected or "")
        keys = [self._key(domain, "current"), self._key(domain, "history")]
        args = [version, guard, changed_at.isoformat(), reason, self._history_limit]
        try:
            ok, other = self._move(keys=keys, args=args)
        except redis.RedisError as exc:
            raise PointerError(f"moving the model pointer of {domain}: {exc}") from exc
        if not int(ok):
            raise PointerConflict(domain, expected, _text(other) or None)
        return PointerChange(domain, version, _text(other) or None, changed_at, reason)

    def history(self, domain: str, limit: int | None = None) -> list[PointerChange]:
        """Changes of ``domain``'s pointer, newest first."""
        stop = -1 if limit is None else limit - 1
        try:
            raw = self._client.lrange(self._key(domain, "history"), 0, stop)
        except redis.RedisError as exc:
            raise PointerError(f"reading the model history of {domain}: {exc}") from exc
        changes = []
        for item in raw:
            entry = json.loads(_text(item))
            changes.append(
                PointerChange(
                    domain=domain,
                    version=entry["version"],
                    previous=entry["previous"] or None,
                    changed_at=datetime.fromisoformat(entry["changed_at"]),
                    reason=entry["reason"],
                )
            )
        return changes

    def previous(self, domain: str) -> str | None:
        """The version that was live before the current one (the default rollback target)."""
        try:
            value = self._client.hget(self._key(domain, "current"), "previous")
        except redis.RedisError as exc:
            raise PointerError(f"reading the model pointer of {domain}: {exc}") from exc
        return _text(value) or None


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value
