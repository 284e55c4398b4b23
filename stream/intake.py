"""Intake: a batch of Kafka records -> score requests, and dead letters for the rest.

Two intakes feed the same pipeline (``stream/pipeline.py``):

- ``EventIntake`` (``crm.events``): validate each record, encode the batch's events and profiles
  per domain with one vectorised call each, append them all to the sequence store in one call,
  and ask a score for every stored event (with the exact window the append left). An exact
  duplicate (same event id, same content) is ignored; the same id with other content is a
  producer bug the user must see: a dead letter ``event_id_conflict`` naming both contents'
  hashes (``content_hash``: kind, time and fields, canonical JSON);
- ``RequestIntake`` (``risk.score-requests``, from an ingest worker with the topic handoff):
  decode each request.

Bad input never stops the batch: each record that cannot be used becomes a ``DeadLetter``
(original bytes + reason), and the rest goes on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import orjson

from state import Append, AppendStatus, CustomerSequence
from stream.events import (
    CustomerEvent,
    DeadLetter,
    FieldValue,
    InvalidEvent,
    dead_letter,
    parse_event,
)
from stream.ports import Record, SequenceStore
from stream.requests import ScoreRequest
from stream.transform import event_time_ms

__all__ = ["Encoder", "EventIntake", "Intake", "RequestIntake", "content_hash"]

log = logging.getLogger(__name__)


class Encoder(Protocol):
    """The per-domain ``model.FeatureEncoder`` surface that the intake uses."""

    def encode_events_many(
        self, kinds: Sequence[str], fields: Sequence[Mapping[str, FieldValue]]
    ) -> np.ndarray: ...

    def encode_profiles_many(self, fields: Sequence[Mapping[str, FieldValue]]) -> np.ndarray: ...


@dataclass
class Intake:
    """What a batch yields: requests to score, dead letters, and counts by what happened."""

    requests: list[ScoreRequest] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    applied: int = 0
    duplicates: int = 0  # same event id already stored: not scored again
    redelivered: int = 0  # offset already applied (restart): re-scored, state untouched
    outside_window: int = 0  # older than a full window: nothing changed, not scored
    unscored: int = 0  # stored, but the customer has no events yet (profile only)

    def reject(self, record: Record, error: InvalidEvent) -> None:
        self.dead_letters.append(
            dead_letter(
                record.value,
                error,
                record.topic,
                key=record.key,
                partition=record.partition,
                offset=record.offset,
            )
        )


class EventIntake:
    """Validates, encodes and stores a batch of inbound events.

    Parameters
    ----------
    store
        Where windows live.
    encoders
        Feature encoder per domain (from each domain's model manifest); other domains go to the
        DLQ as ``unknown_domain``.
    max_message_bytes
        Larger inbound messages go to the DLQ as ``oversized``.
    exposure_fields
        Per domain, the profile field holding the amount at risk (credit: ``LIMIT_BAL``).
    max_future_s
        Events dated more than this after the wall clock go to the DLQ as ``future_event``
        (None: no limit): a wrong year would otherwise sort to the end of the window for good.
    """

    def __init__(
        self,
        store: SequenceStore,
        encoders: Mapping[str, Encoder],
        max_message_bytes: int,
        exposure_fields: Mapping[str, str],
        max_future_s: float | None = 86_400.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._encoders = dict(encoders)
        self._max_bytes = max_message_bytes
        self._exposure_fields = dict(exposure_fields)
        self._max_future_ms = None if max_future_s is None else max_future_s * 1000
        self._clock = clock

    def swap(self, domain: str, encoder: Encoder) -> None:
        """Encode ``domain`` with ``encoder`` from the next batch on (a reloaded model's)."""
        self._encoders[domain] = encoder

    def take(self, records: Sequence[Record], guard: bool = True) -> Intake:
        """Validate, encode and store ``records``; ``guard=False`` (a state rebuild) stores them
        without the offset guard: only event ids keep it idempotent, nothing is redelivered."""
        intake = Intake()
        valid: list[tuple[Record, CustomerEvent]] = []
        horizon_ms = None
        if self._max_future_ms is not None:
            horizon_ms = self._clock() * 1000 + self._max_future_ms
        for record in records:
            try:
                valid.append((record, self._validate(record, horizon_ms)))
            except InvalidEvent as exc:
                intake.reject(record, exc)
            except Exception as exc:  # a bug or a limit we did not foresee: never a crash loop
                log.exception("unexpected error validating %s/%s", record.partition, record.offset)
                intake.reject(record, InvalidEvent("unparseable", f"{type(exc).__name__}: {exc}"))
        vectors = self._encode(valid, intake)
        appends, kept = [], []
        for (record, event), vector in zip(valid, vectors, strict=True):
            if vector is None:
                continue
            appends.append(self._append(record, event, vector, guard))
            kept.append((record, event, appends[-1]))
        if not appends:
            return intake
        for (record, event, append), stored in zip(
            kept, self._store.append_many(appends), strict=True
        ):
            status = stored.status
            if status is AppendStatus.CONFLICT:
                intake.reject(
                    record,
                    InvalidEvent(
                        "event_id_conflict",
                        f"event_id {event.event_id!r} of customer {event.customer_id!r} is "
                        f"already stored with other content (stored content hash "
                        f"{(stored.stored_hash or b'').hex()}, this one "
                        f"{append.content_hash.hex()}): event ids must name one event",
                    ),
                )
                continue
            if status is AppendStatus.DUPLICATE:
                intake.duplicates += 1
                continue
            if status is AppendStatus.OUTSIDE_WINDOW:
                intake.outside_window += 1
                continue
            sequence = stored.sequence
            if status is AppendStatus.APPLIED:
                intake.applied += 1
            else:
                intake.redelivered += 1
                # The window now may hold events that arrived after this one (a batch retried
                # or replayed after a crash): score it as of itself, never with its future.
                sequence = _as_of(sequence, append.event_time_ms, event.event_id)
            if len(sequence) == 0:
                intake.unscored += 1
                continue
            intake.requests.append(
                ScoreRequest(
                    customer_id=event.customer_id,
                    domain=event.domain,
                    event_id=event.event_id,
                    event_time_ms=append.event_time_ms,
                    produced_ms=record.timestamp,
                    sequence=sequence,
                )
            )
        return intake

    def _validate(self, record: Record, horizon_ms: float | None) -> CustomerEvent:
        if record.value is None:
            raise InvalidEvent("invalid_json", "message has no value (tombstone)")
        event = parse_event(record.value, self._max_bytes)
        if horizon_ms is not None and event_time_ms(event) > horizon_ms:
            raise InvalidEvent(
                "future_event",
                f"event_time: {event.event_time.isoformat()} is more than "
                f"{self._max_future_ms / 1000:.0f} s ahead of the clock",
            )
        if event.domain not in self._encoders:
            raise InvalidEvent(
                "unknown_domain",
                f"domain: {event.domain!r} has no model here (known: {sorted(self._encoders)})",
            )
        if "\x00" in event.event_id or "\x00" in event.customer_id:
            raise InvalidEvent("invalid_fields", "event_id/customer_id: NUL characters")
        if record.key is not None and record.key != event.key:
            raise InvalidEvent(
                "key_mismatch",
                f"key {record.key!r} is not customer_id {event.customer_id!r}: "
                "events must be keyed by customer id to stay ordered",
            )
        return event

    def _encode(
        self, valid: Sequence[tuple[Record, CustomerEvent]], intake: Intake
    ) -> list[np.ndarray | None]:
        """One vector per valid event (None where it cannot be encoded: dead-lettered).

        Events and profiles of one domain are encoded with one vectorised call each; if that
        call fails, the group is encoded one by one to find the events to blame.
        """
        out: list[np.ndarray | None] = [None] * len(valid)
        groups: dict[tuple[str, bool], list[int]] = {}
        for i, (_, event) in enumerate(valid):
            groups.setdefault((event.domain, event.kind == "profile"), []).append(i)
        for (domain, is_profile), rows in groups.items():
            encoder = self._encoders[domain]
            try:
                block = _encode_block(encoder, [valid[i][1] for i in rows], is_profile)
            except Exception:  # find the events to blame one by one below
                block = None
            for j, i in enumerate(rows):
                record, event = valid[i]
                try:
                    vector = (
                        block[j]
                        if block is not None
                        else _encode_block(encoder, [event], is_profile)[0]
                    )
                    if not np.isfinite(vector).all():
                        raise InvalidEvent(
                            "unencodable", f"{event.kind} fields encode to non-finite values"
                        )
                except Exception as exc:
                    if not isinstance(exc, InvalidEvent):
                        exc = InvalidEvent(
                            "unencodable", f"{event.kind} fields: {type(exc).__name__}: {exc}"
                        )
                    intake.reject(record, exc)
                    continue
                out[i] = vector
        return out

    def _append(
        self, record: Record, event: CustomerEvent, vector: np.ndarray, guard: bool = True
    ) -> Append:
        exposure = None
        if event.kind == "profile":
            exposure = _exposure(event, self._exposure_fields.get(event.domain))
        return Append(
            customer_id=event.customer_id,
            domain=event.domain,
            event_id=event.event_id,
            event_time_ms=event_time_ms(event),
            kind=event.kind,
            vector=vector,
            source=(record.topic, record.partition, record.offset) if guard else None,
            exposure=exposure,
            content_hash=content_hash(event),
        )


class RequestIntake:
    """Decodes score requests; malformed ones and unserved domains become dead letters."""

    def __init__(self, domains: Sequence[str]) -> None:
        self._domains = set(domains)

    def swap(self, domain: str, encoder: object) -> None:
        """Nothing to swap: requests arrive encoded (the pipeline calls it for symmetry)."""

    def take(self, records: Sequence[Record], guard: bool = True) -> Intake:
        intake = Intake()
        for record in records:
            try:
                if record.value is None:
                    raise ValueError("message has no value (tombstone)")
                request = ScoreRequest.from_bytes(record.value)
            except Exception as exc:  # whatever the bytes are, a dead letter, never a crash
                intake.reject(
                    record,
                    InvalidEvent("invalid_request", f"score request: {type(exc).__name__}: {exc}"),
                )
                continue
            profile = request.sequence.profile
            if not np.isfinite(request.sequence.events).all() or (
                profile is not None and not np.isfinite(profile).all()
            ):
                intake.reject(
                    record, InvalidEvent("non_finite", "score request: NaN or infinite inputs")
                )
                continue
            if request.domain not in self._domains:
                intake.reject(
                    record,
                    InvalidEvent(
                        "unknown_domain",
                        f"domain: {request.domain!r} has no model here "
                        f"(known: {sorted(self._domains)})",
                    ),
                )
                continue
            intake.requests.append(request)
        return intake


def content_hash(event: CustomerEvent) -> bytes:
    """8 bytes naming what the event says: its kind, time and fields (canonical JSON).

    >>> from stream.events import parse_event
    >>> a = parse_event(b'{"event_id": "e", "customer_id": "c", "domain": "d", "kind": "k",'
    ...                 b' "event_time": "2024-01-01T00:00:00Z", "fields": {"x": 1, "y": 2}}')
    >>> b = a.model_copy(update={"fields": {"y": 2, "x": 1}})
    >>> content_hash(a) == content_hash(b), content_hash(a) == content_hash(
    ...     a.model_copy(update={"fields": {"x": 1, "y": 3}}))
    (True, False)
    """
    document = [event.kind, event_time_ms(event), event.fields]
    return hashlib.blake2b(
        orjson.dumps(document, option=orjson.OPT_SORT_KEYS), digest_size=8
    ).digest()


def _as_of(sequence: CustomerSequence, time_ms: int, event_id: str) -> CustomerSequence:
    """The part of a window up to and including the event at (``time_ms``, ``event_id``) in the
    store's order (event time, then event id bytes).

    >>> import numpy as np
    >>> w = CustomerSequence(["a", "b", "c"], np.array([1, 2, 2]), ["k"] * 3,
    ...                      np.zeros((3, 1), np.float32), None)
    >>> _as_of(w, 2, "b").event_ids, _as_of(w, 1, "a").event_ids, len(_as_of(w, 5, "z"))
    (['a', 'b'], ['a'], 3)
    """
    times = sequence.event_times_ms
    keep = int(np.searchsorted(times, time_ms, side="left"))  # sorted by time first
    own = event_id.encode()
    while keep < len(times) and times[keep] == time_ms and sequence.event_ids[keep].encode() <= own:
        keep += 1  # same time: by event id bytes, as the store orders them
    if keep == len(sequence):
        return sequence
    return dataclasses.replace(
        sequence,
        event_ids=sequence.event_ids[:keep],
        event_times_ms=times[:keep],
        kinds=sequence.kinds[:keep],
        events=sequence.events[:keep],
    )


def _encode_block(encoder: Encoder, events: Sequence[CustomerEvent], is_profile: bool):
    if is_profile:
        return encoder.encode_profiles_many([e.fields for e in events])
    return encoder.encode_events_many([e.kind for e in events], [e.fields for e in events])


def _exposure(event: CustomerEvent, name: str | None) -> float | None:
    if name is None:
        return None
    value = event.fields.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
