"""Which model version is live per domain, and every change to it: on disk, copied to Redis.

The source of truth is a small journal beside the model registry (``<models>/live/``,
``lifecycle/journal.py``): the registry holds every version, the journal says which one is
current, and both survive whatever happens to Redis. Redis holds a copy (``PointerCache``) for
readers without the disk, and a restarted, empty Redis gets it back from the journal
(``repair_cache``, which the model watcher calls on every check). ``risk.model-updates`` only
announces changes (``lifecycle/announcements.py``).

A move takes the domain's exclusive file lock, checks the expected current version, writes the
new current atomically and appends to the history, so two writers (the trainer promoting, an
operator rolling back) cannot interleave: the loser gets ``PointerConflict``. The Redis copy is
written after the journal; failing to write it only delays readers of the copy. A domain may
also have one trial (``lifecycle/trials.py``), in the journal only.

Keys: ``{prefix}:model:{{domain}}:current`` (hash) and ``{prefix}:model:{{domain}}:history``
(list, newest first, capped; the braces are a cluster hash tag). Only ``PointerCache`` builds
them. A deployment whose pointer lived only in Redis (before the journal, keys without the tag)
is migrated on first read.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import redis

from crmrisk.lifecycle.journal import ANY, PointerChange, PointerConflict, PointerJournal
from crmrisk.lifecycle.trials import TrialJournal

__all__ = ["ModelPointer", "PointerCache"]

log = logging.getLogger(__name__)


class PointerCache:
    """The Redis copy of each domain's pointer, moved by one script (``pointer.lua``)."""

    def __init__(self, client: redis.Redis, key_prefix: str, history_limit: int) -> None:
        if history_limit < 1:
            raise ValueError(f"history_limit must be >= 1, got {history_limit}")
        self._client = client
        self._prefix = key_prefix
        self._history_limit = history_limit
        source = resources.files("crmrisk.lifecycle").joinpath("pointer.lua").read_text()
        self._move = client.register_script(source)

    def _key(self, domain: str, part: str) -> str:
        # The domain is the hash tag: both keys of a move share one cluster slot (one script).
        return f"{self._prefix}:model:{{{domain}}}:{part}"

    def _legacy_key(self, domain: str, part: str) -> str:
        """Keys before the hash tag (and before the journal): read once, by ``legacy``."""
        return f"{self._prefix}:model:{domain}:{part}"

    def version(self, domain: str) -> str:
        """The copied version ("" when none); raises ``redis.RedisError``."""
        return _text(self._client.hget(self._key(domain, "current"), "version"))

    def write(self, domain: str, entry: dict[str, str]) -> bool:
        """Copy ``entry`` (a journal entry); False, logged, when Redis does not answer."""
        keys = [self._key(domain, "current"), self._key(domain, "history")]
        args = [entry["version"], ANY, entry["changed_at"], entry["reason"], self._history_limit]
        try:
            self._move(keys=keys, args=args)
        except redis.RedisError as exc:
            log.warning(
                "model pointer of %s not copied to Redis (%s): readers of the copy "
                "catch up when it answers",
                domain,
                exc,
            )
            return False
        return True

    def legacy(self, domain: str) -> tuple[dict[str, str], list[str]]:
        """A pointer kept only in Redis (before the journal): its current entry and history,
        oldest first, as JSON lines; raises ``redis.RedisError``."""
        current = self._client.hgetall(self._legacy_key(domain, "current"))
        history = self._client.lrange(self._legacy_key(domain, "history"), 0, -1)
        entry = {_text(k): _text(v) for k, v in current.items()}
        return entry, [_text(item) for item in reversed(history)]


class ModelPointer(TrialJournal):
    """The "current" model version per domain, with its change history and (``TrialJournal``:
    ``trial``, ``start_trial``, ``end_trial``, ``trials``) its trial.

    Parameters
    ----------
    client
        A ``redis.Redis`` client for the cache (bytes or decoded responses both work).
    key_prefix
        Prefix of every key written (``RISK_REDIS__KEY_PREFIX``).
    history_limit
        Changes kept per domain in Redis; the journal keeps all of them.
    directory
        The journal's folder: ``<model registry root>/live``.
    """

    def __init__(
        self, client: redis.Redis, key_prefix: str, history_limit: int, directory: Path
    ) -> None:
        super().__init__(PointerJournal(directory))
        self._client = client  # the cache's client (a second pointer on it shares the copy)
        self._cache = PointerCache(client, key_prefix, history_limit)
        self.directory = self._journal.directory

    # -- reads: the journal ------------------------------------------------------------------
    def current(self, domain: str) -> str | None:
        """The live version of ``domain``, or None if none was ever set."""
        return self._read(domain).get("version") or None

    def previous(self, domain: str) -> str | None:
        """The version that was live before the current one (the default rollback target)."""
        return self._read(domain).get("previous") or None

    def history(self, domain: str, limit: int | None = None) -> list[PointerChange]:
        """Changes of ``domain``'s pointer, newest first."""
        self._read(domain)  # migrates a Redis-only pointer first
        changes = self._journal.history(domain)
        return changes if limit is None else changes[:limit]

    def _read(self, domain: str) -> dict[str, str]:
        entry = self._journal.current(domain)
        return self._migrate(domain) if entry is None else entry

    def _migrate(self, domain: str) -> dict[str, str]:
        """A pointer set before the journal existed lives only in Redis: copy it to disk."""
        try:
            entry, history = self._cache.legacy(domain)
        except redis.RedisError as exc:
            log.debug("no journal for %s and Redis unreadable: %s", domain, exc)
            return {}
        if not entry.get("version"):
            return {}
        with self._journal.locked(domain):
            if not self._journal.exists(domain):
                self._journal.restore(domain, entry, history)
                log.info("model pointer of %s copied from Redis to %s", domain, self.directory)
        return entry

    # -- moves: the journal, then the cache --------------------------------------------------
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
        self._read(domain)  # migrates a Redis-only pointer (it takes the lock itself)
        with self._journal.locked(domain):
            actual = (self._journal.current(domain) or {}).get("version") or None
            if expected != ANY and (expected or None) != actual:
                raise PointerConflict(domain, expected, actual)
            entry = {
                "version": version,
                "previous": actual or "",
                "changed_at": changed_at.isoformat(),
                "reason": reason,
            }
            self._journal.record(domain, entry)
        self._cache.write(domain, entry)
        return PointerChange(domain, version, actual, changed_at, reason)

    def repair_cache(self, domain: str) -> bool:
        """Copy the journal's current version to Redis if Redis lacks it or differs.

        Returns True when it wrote the copy; Redis errors are logged, not raised (the cache
        only serves readers without the disk).
        """
        entry = self._read(domain)
        if not entry.get("version"):
            return False
        try:
            cached = self._cache.version(domain)
        except redis.RedisError as exc:
            log.debug("model pointer cache of %s unreadable: %s", domain, exc)
            return False
        if cached == entry["version"]:
            return False
        log.info("model pointer cache of %s: %r -> %r", domain, cached, entry["version"])
        return self._cache.write(domain, entry)


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value
