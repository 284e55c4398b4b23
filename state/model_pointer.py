"""Which model version is live per domain, and every change to it: on disk, cached in Redis.

The source of truth is a small journal beside the model registry (``<models>/live/``): the
registry holds every version, the journal says which one is current, and both survive whatever
happens to Redis. Redis holds a copy (same keys as before) for readers without the disk, and a
restarted, empty Redis gets it back from the journal (``repair_cache``, which the model watcher
calls on every check). ``risk.model-updates`` only announces changes.

A move takes an exclusive file lock, checks the expected current version, writes the new
current atomically (temporary file, fsync, rename) and appends to the history, so two writers
(the trainer promoting, an operator rolling back) cannot interleave: the loser gets
``PointerConflict``. The Redis copy is written after the journal; failing to write it only
delays readers of the copy.

A domain may also have one **trial**: a challenger version scored beside the live one, either
as a shadow (scored, compared, never alerted on) or as a canary (a stable share of customers
scored and alerted on by it). The trial lives in the journal only (workers read the journal);
starting and ending one is recorded in its own history.

Files: ``live/<domain>.json`` (current), ``live/<domain>.history.jsonl`` (oldest first),
``live/<domain>.trial.json`` (the running trial, if any), ``live/<domain>.trials.jsonl``.
Keys: ``{prefix}:model:{{domain}}:current`` (hash) and ``{prefix}:model:{{domain}}:history``
(list, newest first, capped; the braces are a cluster hash tag). Only this class builds them.
A deployment whose pointer lived only in Redis (before the journal, keys without the tag) is
migrated on first read.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Literal

import redis

from state.errors import StateError

__all__ = [
    "ANY",
    "ModelPointer",
    "PointerChange",
    "PointerConflict",
    "PointerError",
    "Trial",
    "TrialEnd",
]

log = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class Trial:
    """A challenger ``version`` on trial beside the live one: ``shadow`` (scored and compared
    only) or ``canary`` (``percent`` of customers, by a stable hash of their id, served by it)."""

    domain: str
    mode: Literal["shadow", "canary"]
    version: str
    percent: float
    started_at: datetime
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "version": self.version,
            "percent": self.percent,
            "started_at": self.started_at.isoformat(),
            "reason": self.reason,
        }


@dataclass(frozen=True)
class TrialEnd:
    """How a trial ended: ``promoted``, ``rolled_back`` (by a rule) or ``stopped``."""

    trial: Trial
    outcome: Literal["promoted", "rolled_back", "stopped"]
    ended_at: datetime
    reason: str


class ModelPointer:
    """The "current" model version per domain, with its change history.

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
        if history_limit < 1:
            raise ValueError(f"history_limit must be >= 1, got {history_limit}")
        self._client = client
        self._prefix = key_prefix
        self._history_limit = history_limit
        self.directory = Path(directory)
        source = resources.files("state").joinpath("model_pointer.lua").read_text()
        self._move = client.register_script(source)

    def _key(self, domain: str, part: str) -> str:
        # The domain is the hash tag: both keys of a move share one cluster slot (one script).
        return f"{self._prefix}:model:{{{domain}}}:{part}"

    def _legacy_key(self, domain: str, part: str) -> str:
        """Keys before the hash tag (and before the journal): read once, by ``_migrate``."""
        return f"{self._prefix}:model:{domain}:{part}"

    def _file(self, domain: str, suffix: str) -> Path:
        return self.directory / f"{domain}{suffix}"

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
        path = self._file(domain, ".history.jsonl")
        try:
            lines = path.read_text().splitlines() if path.exists() else []
        except OSError as exc:
            raise PointerError(f"reading {path}: {exc}") from exc
        changes = [_change(domain, json.loads(line)) for line in reversed(lines) if line]
        return changes if limit is None else changes[:limit]

    def _read(self, domain: str, migrate: bool = True) -> dict[str, str]:
        path = self._file(domain, ".json")
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return self._migrate(domain) if migrate else {}
        except (OSError, ValueError) as exc:
            raise PointerError(f"reading the model pointer {path}: {exc}") from exc

    def _migrate(self, domain: str) -> dict[str, str]:
        """A pointer set before the journal existed lives only in Redis: copy it to disk."""
        try:
            current = self._client.hgetall(self._legacy_key(domain, "current"))
            history = self._client.lrange(self._legacy_key(domain, "history"), 0, -1)
        except redis.RedisError as exc:
            log.debug("no journal for %s and Redis unreadable: %s", domain, exc)
            return {}
        entry = {_text(k): _text(v) for k, v in current.items()}
        if not entry.get("version"):
            return {}
        with self._locked(domain):
            if not self._file(domain, ".json").exists():
                lines = [_text(item) for item in reversed(history)]
                self._file(domain, ".history.jsonl").write_text("".join(f"{x}\n" for x in lines))
                self._write_current(domain, entry)
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
        with self._locked(domain):
            actual = self._read(domain, migrate=False).get("version") or None
            if expected != ANY and (expected or None) != actual:
                raise PointerConflict(domain, expected, actual)
            entry = {
                "version": version,
                "previous": actual or "",
                "changed_at": changed_at.isoformat(),
                "reason": reason,
            }
            try:
                with self._file(domain, ".history.jsonl").open("a") as history:
                    history.write(json.dumps(entry) + "\n")
                    history.flush()
                    os.fsync(history.fileno())
                self._write_current(domain, entry)
            except OSError as exc:
                raise PointerError(f"moving the model pointer of {domain}: {exc}") from exc
        self._cache(domain, entry)
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
            cached = _text(self._client.hget(self._key(domain, "current"), "version"))
        except redis.RedisError as exc:
            log.debug("model pointer cache of %s unreadable: %s", domain, exc)
            return False
        if cached == entry["version"]:
            return False
        log.info("model pointer cache of %s: %r -> %r", domain, cached, entry["version"])
        return self._cache(domain, entry)

    def _cache(self, domain: str, entry: dict[str, str]) -> bool:
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

    # -- the trial: the journal only -----------------------------------------------------------
    def trial(self, domain: str) -> Trial | None:
        """The challenger on trial for ``domain``, if any."""
        path = self._file(domain, ".trial.json")
        try:
            entry = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise PointerError(f"reading the model trial {path}: {exc}") from exc
        return _trial(domain, entry)

    def start_trial(
        self,
        domain: str,
        mode: Literal["shadow", "canary"],
        version: str,
        reason: str,
        *,
        percent: float = 0.0,
        now: datetime | None = None,
    ) -> Trial:
        """Put ``version`` on trial; replaces a running trial (recorded as ``stopped``).

        Refused (``ValueError``) when ``version`` is the live one, for an unknown ``mode``, or a
        canary share outside (0, 100)."""
        if mode not in ("shadow", "canary"):
            raise ValueError(f"trial mode must be 'shadow' or 'canary', got {mode!r}")
        if mode == "canary" and not 0 < percent < 100:
            raise ValueError(f"canary percent must be in (0, 100), got {percent}")
        if mode == "shadow":
            percent = 0.0
        when = (now or datetime.now(UTC)).astimezone(UTC)
        trial = Trial(domain, mode, version, float(percent), when, reason)
        with self._locked(domain):
            if self._read(domain, migrate=False).get("version") == version:
                raise ValueError(f"{domain}/{version} is already live: nothing to try")
            running = self.trial(domain)
            if running is not None:
                self._log_trial_end(TrialEnd(running, "stopped", when, f"replaced by {version}"))
            self._log_trial({"event": "start", "domain": domain, **trial.to_dict()})
            self._write_json(self._file(domain, ".trial.json"), trial.to_dict())
        return trial

    def end_trial(
        self,
        domain: str,
        outcome: Literal["promoted", "rolled_back", "stopped"],
        reason: str,
        *,
        version: str | None = None,
        now: datetime | None = None,
    ) -> TrialEnd | None:
        """End the running trial (None if there is none, or if it is not of ``version``)."""
        when = (now or datetime.now(UTC)).astimezone(UTC)
        with self._locked(domain):
            running = self.trial(domain)
            if running is None or (version is not None and running.version != version):
                return None
            end = TrialEnd(running, outcome, when, reason)
            self._log_trial_end(end)
            try:
                self._file(domain, ".trial.json").unlink()
                self._sync_directory()
            except OSError as exc:
                raise PointerError(f"ending the model trial of {domain}: {exc}") from exc
        return end

    def trials(self, domain: str) -> list[dict[str, object]]:
        """Trial starts and ends of ``domain``, oldest first (as recorded)."""
        path = self._file(domain, ".trials.jsonl")
        try:
            lines = path.read_text().splitlines() if path.exists() else []
        except OSError as exc:
            raise PointerError(f"reading {path}: {exc}") from exc
        return [json.loads(line) for line in lines if line]

    def _log_trial_end(self, end: TrialEnd) -> None:
        self._log_trial(
            {
                "event": "end",
                "domain": end.trial.domain,
                **end.trial.to_dict(),
                "outcome": end.outcome,
                "ended_at": end.ended_at.isoformat(),
                "end_reason": end.reason,
            }
        )

    def _log_trial(self, entry: dict[str, object]) -> None:
        path = self._file(str(entry["domain"]), ".trials.jsonl")
        try:
            with path.open("a") as handle:
                handle.write(json.dumps(entry) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise PointerError(f"writing {path}: {exc}") from exc

    def _write_current(self, domain: str, entry: dict[str, str]) -> None:
        self._write_json(self._file(domain, ".json"), entry)

    def _write_json(self, path: Path, entry: dict) -> None:
        temporary = path.with_suffix(".json.tmp")
        with temporary.open("w") as handle:
            json.dump(entry, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        self._sync_directory()

    def _sync_directory(self) -> None:
        descriptor = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    @contextmanager
    def _locked(self, domain: str) -> Iterator[None]:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            handle = self._file(domain, ".lock").open("w")
        except OSError as exc:
            raise PointerError(f"locking the model pointer of {domain}: {exc}") from exc
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _change(domain: str, entry: dict[str, str]) -> PointerChange:
    return PointerChange(
        domain=domain,
        version=entry["version"],
        previous=entry.get("previous") or None,
        changed_at=datetime.fromisoformat(entry["changed_at"]),
        reason=entry.get("reason", ""),
    )


def _trial(domain: str, entry: dict) -> Trial:
    return Trial(
        domain=domain,
        mode=entry["mode"],
        version=entry["version"],
        percent=float(entry.get("percent") or 0.0),
        started_at=datetime.fromisoformat(entry["started_at"]),
        reason=entry.get("reason", ""),
    )


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value
