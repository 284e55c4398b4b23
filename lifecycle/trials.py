"""A domain's trial: a challenger version scored beside the live one, kept in the journal.

A trial is a ``shadow`` (scored and compared, never alerted on) or a ``canary`` (a stable share
of customers scored and alerted on by it). It lives in the pointer's journal folder only
(workers read the journal): ``<domain>.trial.json`` (the running trial, if any) and
``<domain>.trials.jsonl`` (every start and end, oldest first), under the domain's lock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from crmrisk.lifecycle.journal import PointerError, PointerJournal

__all__ = ["Trial", "TrialEnd", "TrialJournal", "TrialOutcome"]

# How a trial ends: its challenger promoted, rolled back (a guard failed), or stopped by hand.
TrialOutcome = Literal["promoted", "rolled_back", "stopped"]


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

    @classmethod
    def from_dict(cls, domain: str, entry: dict) -> Trial:
        return cls(
            domain=domain,
            mode=entry["mode"],
            version=entry["version"],
            percent=float(entry.get("percent") or 0.0),
            started_at=datetime.fromisoformat(entry["started_at"]),
            reason=entry.get("reason", ""),
        )


@dataclass(frozen=True)
class TrialEnd:
    """How a trial ended: ``promoted``, ``rolled_back`` (by a rule) or ``stopped``."""

    trial: Trial
    outcome: TrialOutcome
    ended_at: datetime
    reason: str


class TrialJournal:
    """Start, read and end each domain's trial in ``journal``'s folder (``ModelPointer`` is
    one: a domain's trial is read and moved with its pointer)."""

    def __init__(self, journal: PointerJournal) -> None:
        self._journal = journal

    def trial(self, domain: str) -> Trial | None:
        """The challenger on trial for ``domain``, if any."""
        path = self._journal.file(domain, ".trial.json")
        try:
            entry = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise PointerError(f"reading the model trial {path}: {exc}") from exc
        return Trial.from_dict(domain, entry)

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
        with self._journal.locked(domain):
            if (self._journal.current(domain) or {}).get("version") == version:
                raise ValueError(f"{domain}/{version} is already live: nothing to try")
            running = self.trial(domain)
            if running is not None:
                self._log_end(TrialEnd(running, "stopped", when, f"replaced by {version}"))
            self._log({"event": "start", "domain": domain, **trial.to_dict()})
            self._journal.write_json(self._journal.file(domain, ".trial.json"), trial.to_dict())
        return trial

    def end_trial(
        self,
        domain: str,
        outcome: TrialOutcome,
        reason: str,
        *,
        version: str | None = None,
        now: datetime | None = None,
    ) -> TrialEnd | None:
        """End the running trial (None if there is none, or if it is not of ``version``)."""
        when = (now or datetime.now(UTC)).astimezone(UTC)
        with self._journal.locked(domain):
            running = self.trial(domain)
            if running is None or (version is not None and running.version != version):
                return None
            end = TrialEnd(running, outcome, when, reason)
            self._log_end(end)
            try:
                self._journal.file(domain, ".trial.json").unlink()
                self._journal.sync_directory()
            except OSError as exc:
                raise PointerError(f"ending the model trial of {domain}: {exc}") from exc
        return end

    def trials(self, domain: str) -> list[dict[str, object]]:
        """Trial starts and ends of ``domain``, oldest first (as recorded)."""
        lines = self._journal.read_lines(self._journal.file(domain, ".trials.jsonl"))
        return [json.loads(line) for line in lines]

    def _log_end(self, end: TrialEnd) -> None:
        self._log(
            {
                "event": "end",
                "domain": end.trial.domain,
                **end.trial.to_dict(),
                "outcome": end.outcome,
                "ended_at": end.ended_at.isoformat(),
                "end_reason": end.reason,
            }
        )

    def _log(self, entry: dict[str, object]) -> None:
        path = self._journal.file(str(entry["domain"]), ".trials.jsonl")
        try:
            self._journal.append_line(path, entry)
        except OSError as exc:
            raise PointerError(f"writing {path}: {exc}") from exc
