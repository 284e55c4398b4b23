"""The live-model pointer's journal on disk: the source of truth beside the model registry.

Per domain, under ``<models>/live/``: ``<domain>.json`` (the current version, with the previous
one, when and why), ``<domain>.history.jsonl`` (every move, oldest first) and ``<domain>.lock``.
The trial files (``lifecycle/trials.py``) live in the same folder under the same lock.

Every write is durable before it counts: a temporary file, fsync, rename, fsync of the folder;
history lines are appended and fsynced. Two writers (the trainer promoting, an operator rolling
back) serialize on the domain's exclusive file lock.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from crmrisk.state.errors import StateError

__all__ = ["ANY", "PointerChange", "PointerConflict", "PointerError", "PointerJournal"]

ANY = "*"  # ``expected`` value that skips the compare-and-set guard


class PointerError(StateError):
    """The model pointer could not be read or moved (journal or Redis)."""


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

    @classmethod
    def from_entry(cls, domain: str, entry: dict[str, str]) -> PointerChange:
        """A change as the journal (or the Redis history) records it."""
        return cls(
            domain=domain,
            version=entry["version"],
            previous=entry.get("previous") or None,
            changed_at=datetime.fromisoformat(entry["changed_at"]),
            reason=entry.get("reason", ""),
        )


class PointerJournal:
    """The files of every domain's pointer in ``directory`` (``<model registry root>/live``)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def file(self, domain: str, suffix: str) -> Path:
        return self.directory / f"{domain}{suffix}"

    def exists(self, domain: str) -> bool:
        return self.file(domain, ".json").exists()

    def current(self, domain: str) -> dict[str, str] | None:
        """The domain's current entry, or None when it has no journal yet."""
        path = self.file(domain, ".json")
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise PointerError(f"reading the model pointer {path}: {exc}") from exc

    def history(self, domain: str) -> list[PointerChange]:
        """Every recorded move of ``domain``, newest first."""
        lines = self.read_lines(self.file(domain, ".history.jsonl"))
        return [PointerChange.from_entry(domain, json.loads(line)) for line in reversed(lines)]

    def record(self, domain: str, entry: dict[str, str]) -> None:
        """Append ``entry`` to the history, then make it the current one (hold ``locked``)."""
        try:
            self.append_line(self.file(domain, ".history.jsonl"), entry)
            self.write_json(self.file(domain, ".json"), entry)
        except OSError as exc:
            raise PointerError(f"moving the model pointer of {domain}: {exc}") from exc

    def restore(self, domain: str, entry: dict[str, str], history: list[str]) -> None:
        """Write a pointer kept elsewhere (``history`` oldest first, as JSON lines)."""
        self.file(domain, ".history.jsonl").write_text("".join(f"{x}\n" for x in history))
        self.write_json(self.file(domain, ".json"), entry)

    # -- durable file writes ----------------------------------------------------------------
    @staticmethod
    def read_lines(path: Path) -> list[str]:
        try:
            lines = path.read_text().splitlines() if path.exists() else []
        except OSError as exc:
            raise PointerError(f"reading {path}: {exc}") from exc
        return [line for line in lines if line]

    @staticmethod
    def append_line(path: Path, entry: dict[str, Any]) -> None:
        """Append one JSON line and fsync it (raises ``OSError``: callers say what failed)."""
        with path.open("a") as handle:
            handle.write(json.dumps(entry) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def write_json(self, path: Path, entry: dict[str, Any]) -> None:
        """Replace ``path`` atomically: temporary file, fsync, rename, fsync of the folder."""
        temporary = path.with_suffix(".json.tmp")
        with temporary.open("w") as handle:
            json.dump(entry, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        self.sync_directory()

    def sync_directory(self) -> None:
        descriptor = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    @contextmanager
    def locked(self, domain: str) -> Iterator[None]:
        """Hold ``domain``'s exclusive lock: one writer at a time, across processes."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            handle = self.file(domain, ".lock").open("w")
        except OSError as exc:
            raise PointerError(f"locking the model pointer of {domain}: {exc}") from exc
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
