"""Point-in-time training examples: a customer's events as they stood at the prediction time.

A label (``Outcome``) says what happened to a customer after ``as_of``. Its training example
must be the input the model would have seen when it scored the customer at ``as_of``: the
latest ``window`` events with ``event_time <= as_of`` and the latest profile with
``event_time <= as_of``. Anything later is the future, and training on it leaks the label.

Design: rebuild from the event log, not from Redis. Redis holds only each customer's latest
window, which at training time may already contain events after ``as_of``. So the trainer
reads ``crm.events`` (from the earliest retained offset on start, then as it arrives) into an
``EventLog``: per (domain, customer) the latest ``history_limit`` distinct events by event
time, deduplicated by event id like the serving store. Examples are built when the trainer
needs them, not when the outcome arrives, so an event that arrives late but happened before
``as_of`` is still included. Bounds: memory grows with customers x ``history_limit``; on a
restart the log is rebuilt from Kafka, so Kafka's retention bounds how far back labels can
reach. When the cap has evicted an event at or before ``as_of`` and fewer than ``window``
events remain, the example would be silently shorter than what was served: it is skipped and
counted as ``truncated`` instead.

Order within the window is the serving store's (``stream.transform.window``): event time in
whole milliseconds, ties by the event id's bytes; profile events are not part of the window.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

import numpy as np

from crmrisk.stream.events import CustomerEvent, FieldValue, Outcome
from crmrisk.training.data import Arrays

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)

__all__ = [
    "BuildStats",
    "Encoder",
    "EventLog",
    "PointInTimeExample",
    "build_examples",
    "encode_examples",
]

PROFILE_KIND = "profile"


class Encoder(Protocol):
    """The ``model.FeatureEncoder`` surface used here (the serving encoder, from the manifest)."""

    event_dim: int
    profile_dim: int

    def encode_event(self, kind: str, fields: Mapping[str, FieldValue]) -> np.ndarray: ...

    def encode_profile(self, fields: Mapping[str, FieldValue]) -> np.ndarray: ...

    def encode_events_many(
        self, kinds: Sequence[str], fields: Sequence[Mapping[str, FieldValue]]
    ) -> np.ndarray: ...

    def encode_profiles_many(self, fields: Sequence[Mapping[str, FieldValue]]) -> np.ndarray: ...


@dataclass(frozen=True)
class PointInTimeExample:
    """One labelled example: the model's input at ``as_of`` and what happened afterwards."""

    domain: str
    customer_id: str
    as_of: datetime
    observed_at: datetime
    label: int
    value: float | None
    events: tuple[CustomerEvent, ...]  # oldest first, all with event_time <= as_of
    profile: Mapping[str, FieldValue]  # {} when the customer had no profile by as_of


@dataclass
class BuildStats:
    built: int = 0
    no_events: int = 0  # no event at or before as_of (yet): nothing the model could have seen
    truncated: int = 0  # the log's cap evicted events this example needs

    def as_dict(self) -> dict[str, int]:
        return {"built": self.built, "no_events": self.no_events, "truncated": self.truncated}


@dataclass
class _History:
    keys: list[tuple[int, bytes]] = field(default_factory=list)  # sorted (time ms, event id)
    events: list[CustomerEvent] = field(default_factory=list)  # same order
    ids: set[str] = field(default_factory=set)
    profiles: list[CustomerEvent] = field(default_factory=list)  # sorted by event time
    evicted_until: datetime | None = None  # latest event time the cap has dropped


class EventLog:
    """Per-customer event history rebuilt from ``crm.events``, queryable as of any time.

    Parameters
    ----------
    history_limit
        Non-profile events kept per (domain, customer): the latest by event time.
    """

    def __init__(self, history_limit: int) -> None:
        if history_limit < 1:
            raise ValueError(f"history_limit must be >= 1, got {history_limit}")
        self._limit = history_limit
        self._customers: dict[tuple[str, str], _History] = {}

    def __len__(self) -> int:
        return len(self._customers)

    def add(self, event: CustomerEvent) -> bool:
        """Record one event; False when its event id was already recorded (a redelivery)."""
        history = self._customers.setdefault((event.domain, event.customer_id), _History())
        if event.event_id in history.ids:
            return False
        history.ids.add(event.event_id)
        if event.kind == PROFILE_KIND:
            times = [p.event_time for p in history.profiles]
            history.profiles.insert(bisect.bisect_right(times, event.event_time), event)
            return True
        key = (_ms(event.event_time), event.event_id.encode())
        at = bisect.bisect_right(history.keys, key)
        history.keys.insert(at, key)
        history.events.insert(at, event)
        if len(history.events) > self._limit:
            # Evict the oldest; keep its id so a redelivery of it stays a duplicate.
            history.keys.pop(0)
            dropped = history.events.pop(0)
            if history.evicted_until is None or dropped.event_time > history.evicted_until:
                history.evicted_until = dropped.event_time
        return True

    def add_many(self, events: Iterable[CustomerEvent]) -> int:
        """Record events; returns how many were new."""
        return sum(self.add(e) for e in events)

    def as_of(
        self, domain: str, customer_id: str, as_of: datetime, window: int
    ) -> tuple[tuple[CustomerEvent, ...], Mapping[str, FieldValue], bool]:
        """(latest ``window`` events at or before ``as_of``, profile then, complete?)."""
        history = self._customers.get((domain, customer_id))
        if history is None:
            return (), {}, True
        # Keys before (ms, b"") are strictly earlier; those in as_of's own millisecond are
        # checked against as_of exactly, so a sub-millisecond future event never slips in.
        cutoff = _ms(as_of)
        same_ms = bisect.bisect_left(history.keys, (cutoff, b""))
        end = bisect.bisect_left(history.keys, (cutoff + 1, b""))
        same = [e for e in history.events[same_ms:end] if e.event_time <= as_of]
        earlier = history.events[max(0, same_ms - window) : same_ms]
        events = tuple((earlier + same)[-window:]) if window else ()
        complete = (
            len(events) >= window or history.evicted_until is None or history.evicted_until > as_of
        )
        profile: Mapping[str, FieldValue] = {}
        for candidate in history.profiles:
            if candidate.event_time > as_of:
                break
            profile = candidate.fields
        return events, profile, complete


def _ms(moment: datetime) -> int:
    return (moment - _EPOCH) // _MS


def build_examples(
    log: EventLog, outcomes: Iterable[Outcome], window: int, stats: BuildStats | None = None
) -> list[PointInTimeExample]:
    """One example per outcome whose customer had events by ``as_of``; the rest are counted."""
    stats = stats if stats is not None else BuildStats()
    examples = []
    for outcome in outcomes:
        events, profile, complete = log.as_of(
            outcome.domain, outcome.customer_id, outcome.as_of, window
        )
        if not events:
            stats.no_events += 1
            continue
        if not complete:
            stats.truncated += 1
            continue
        stats.built += 1
        examples.append(
            PointInTimeExample(
                domain=outcome.domain,
                customer_id=outcome.customer_id,
                as_of=outcome.as_of,
                observed_at=outcome.observed_at,
                label=int(outcome.label),
                value=outcome.value,
                events=events,
                profile=dict(profile),
            )
        )
    return examples


def encode_examples(
    examples: Sequence[PointInTimeExample], encoder: Encoder, window: int
) -> Arrays:
    """Examples as model arrays, encoded exactly as ingest encodes them for serving.

    Events are encoded with the serving encoder (``encode_events_many``, the batch twin of the
    ``encode_event`` ingest stores in Redis) and laid out oldest first, right-padded to the
    longest sequence; the profile with ``encode_profiles_many``, zeros when the customer had
    none by ``as_of`` (as the scorer pads a missing profile).
    """
    if not examples:
        raise ValueError("no examples to encode")
    kept = [x.events[-window:] if window else () for x in examples]
    lengths = np.array([len(k) for k in kept], dtype=np.int64)
    n, longest = len(examples), max(int(lengths.max()), 1)
    flat = [e for k in kept for e in k]
    events = np.zeros((n, longest, encoder.event_dim), dtype=np.float32)  # (N, T, E)
    if flat:
        rows = np.repeat(np.arange(n), lengths)
        positions = np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        events[rows, positions] = encoder.encode_events_many(
            [e.kind for e in flat], [e.fields for e in flat]
        )
    mask = np.arange(longest)[None, :] < lengths[:, None]  # (N, T)
    profile = np.zeros((n, encoder.profile_dim), dtype=np.float32)  # (N, P)
    known = [i for i, x in enumerate(examples) if x.profile]
    if known and encoder.profile_dim:
        profile[known] = encoder.encode_profiles_many([examples[i].profile for i in known])
    values = [np.nan if x.value is None else float(x.value) for x in examples]
    target = np.asarray(values, dtype=np.float64)
    return Arrays(
        events=events,
        mask=mask,
        profile=profile,
        label=np.asarray([x.label for x in examples], dtype=np.int64),
        target=None if np.isnan(target).all() else target,
        customer_ids=[x.customer_id for x in examples],
    )
