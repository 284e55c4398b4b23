"""In-memory twins of the Redis stores, for fast unit tests of the delivery order.

Each twin has the surface of its Redis store and passes the same contract tests
(``tests/state/``, parametrised over both), including the Lua script's rules: idempotence by
event id, the per-partition offset guard, order by (event time, event id bytes), the bounded
window, the profile kept apart (latest by time) with its exposure. TTLs are not modelled. Never
used by the workers: integration tests and production always run on Redis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from state.alert_state import AlertState
from state.customer_sequence import Append, AppendResult, AppendStatus, CustomerSequence

__all__ = ["MemoryAlertStore", "MemoryMarks", "MemoryScoreStore", "MemorySequenceStore"]

_UNKNOWN = b"\0" * 8


def _differ(new: bytes, stored: bytes) -> bool:
    """An unknown hash (empty, or all zero as stored) never conflicts."""
    return new != b"" and stored != _UNKNOWN and new != stored


@dataclass
class _Window:
    events: list[tuple[int, str, str, np.ndarray]] = field(default_factory=list)  # (t, id, kind, v)
    hashes: dict[str, bytes] = field(default_factory=dict)  # event id -> content hash
    profile: np.ndarray | None = None
    profile_time: int | None = None
    profile_id: str | None = None
    profile_hash: bytes = _UNKNOWN
    exposure: float | None = None
    offsets: dict[str, int] = field(default_factory=dict)

    def sequence(self) -> CustomerSequence:
        events = (
            np.stack([v for *_, v in self.events]) if self.events else np.zeros((0, 0), np.float32)
        )
        return CustomerSequence(
            event_ids=[i for _, i, _, _ in self.events],
            event_times_ms=np.array([t for t, *_ in self.events], dtype=np.int64),
            kinds=[k for _, _, k, _ in self.events],
            events=events,
            profile=None if self.profile is None else self.profile.copy(),
            exposure=self.exposure,
        )


class MemorySequenceStore:
    """``CustomerSequenceStore`` in a dict (same contract, no Redis)."""

    def __init__(self, window: int) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window = window
        self._data: dict[tuple[str, str], _Window] = {}

    def append(self, item: Append) -> AppendResult:
        return self.append_many([item])[0]

    def append_many(self, items: Sequence[Append]) -> list[AppendResult]:
        return [self._apply(item) for item in items]

    def read(self, customer_id: str, domain: str) -> CustomerSequence:
        return self.read_many([(customer_id, domain)])[0]

    def read_many(self, customers: Sequence[tuple[str, str]]) -> list[CustomerSequence]:
        return [self._data.get(key, _Window()).sequence() for key in customers]

    def forget(self, customer_id: str, domain: str) -> None:
        self._data.pop((customer_id, domain), None)

    def _apply(self, item: Append) -> AppendResult:
        w = self._data.setdefault((item.customer_id, item.domain), _Window())
        vector = np.asarray(item.vector, dtype=np.float32).copy()
        guard = None
        if item.source is not None:
            topic, partition, offset = item.source
            guard = f"o:{topic}:{partition}"
            if guard in w.offsets and w.offsets[guard] >= offset:
                return AppendResult(AppendStatus.REDELIVERED, w.sequence())
        status, stored = AppendStatus.APPLIED, None
        if item.kind == "profile":
            if w.profile_id == item.event_id:
                status = AppendStatus.DUPLICATE
                if _differ(item.content_hash, w.profile_hash):
                    status, stored = AppendStatus.CONFLICT, w.profile_hash
            elif w.profile_time is None or w.profile_time <= item.event_time_ms:
                w.profile, w.profile_time, w.profile_id = vector, item.event_time_ms, item.event_id
                w.exposure = item.exposure
                w.profile_hash = item.content_hash or _UNKNOWN
        elif any(i == item.event_id for _, i, _, _ in w.events):
            status = AppendStatus.DUPLICATE
            if _differ(item.content_hash, w.hashes[item.event_id]):
                status, stored = AppendStatus.CONFLICT, w.hashes[item.event_id]
        else:
            entry = (int(item.event_time_ms), item.event_id, item.kind, vector)
            ordered = sorted([*w.events, entry], key=lambda e: (e[0], e[1].encode()))
            if len(ordered) > self.window and ordered.index(entry) < len(ordered) - self.window:
                status = AppendStatus.OUTSIDE_WINDOW
            else:
                w.events = ordered[-self.window :]
                w.hashes = {i: w.hashes.get(i, _UNKNOWN) for _, i, _, _ in w.events}
                w.hashes[item.event_id] = item.content_hash or _UNKNOWN
        if guard is not None:
            w.offsets[guard] = item.source[2]
        return AppendResult(status, w.sequence(), stored)


class MemoryAlertStore:
    """``AlertStateStore`` in a dict."""

    def __init__(self) -> None:
        self._data: dict[tuple[str, str], AlertState] = {}

    def read(self, customer_id: str, domain: str) -> AlertState:
        return self.read_many([(customer_id, domain)])[0]

    def read_many(self, customers: Sequence[tuple[str, str]]) -> list[AlertState]:
        return [self._data.get(key, AlertState()) for key in customers]

    def write(self, customer_id: str, domain: str, state: AlertState) -> None:
        self.write_many([(customer_id, domain, state)])

    def write_many(self, items: Sequence[tuple[str, str, AlertState]]) -> None:
        for customer_id, domain, state in items:
            old = self._data.get((customer_id, domain), AlertState())
            last = state.last_alert_s if state.last_alert_s is not None else old.last_alert_s
            self._data[(customer_id, domain)] = AlertState(state.armed, last)


class MemoryScoreStore:
    """``LatestScoreStore`` in a dict."""

    def __init__(self) -> None:
        self._data: dict[tuple[str, str], bytes] = {}

    def write(self, customer_id: str, domain: str, payload: bytes) -> None:
        self.write_many([(customer_id, domain, payload)])

    def write_many(self, items: Sequence[tuple[str, str, bytes]]) -> None:
        for customer_id, domain, payload in items:
            self._data[(customer_id, domain)] = payload

    def read(self, customer_id: str, domain: str) -> bytes | None:
        return self.read_many([(customer_id, domain)])[0]

    def read_many(self, customers: Sequence[tuple[str, str]]) -> list[bytes | None]:
        return [self._data.get(key) for key in customers]


class MemoryMarks:
    """``PartitionMarks`` in a dict (same contract, no Redis)."""

    def __init__(self) -> None:
        self.marks: dict[tuple[str, int], tuple[int, int]] = {}

    def missing(self, topic: str, partitions: Sequence[int]) -> list[int]:
        return [p for p in partitions if (topic, p) not in self.marks]

    def mark(self, topic: str, partition: int, rebuilt_events: int, up_to: int) -> None:
        self.marks[(topic, partition)] = (rebuilt_events, up_to)

    def clear(self, topic: str) -> None:
        self.marks = {k: v for k, v in self.marks.items() if k[0] != topic}
