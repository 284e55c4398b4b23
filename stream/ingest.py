"""Ingest: raw Kafka records -> validated, encoded events -> one Redis pipeline -> score requests.

Bad input never stops the batch: it becomes a ``DeadLetter`` (original bytes + reason).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from state import Append, AppendStatus, CustomerSequenceStore
from stream.events import (
    CustomerEvent,
    DeadLetter,
    FieldValue,
    InvalidEvent,
    dead_letter,
    parse_event,
)
from stream.requests import ScoreRequest
from stream.transform import event_time_ms

__all__ = ["Encoder", "IngestResult", "Ingestor", "Record"]

log = logging.getLogger(__name__)


class Record(Protocol):
    """What ingest needs of a consumed message (kafka-python and aiokafka records qualify)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int  # ms since epoch, set by the producer


class Encoder(Protocol):
    """The per-domain ``model.FeatureEncoder`` surface that ingest uses."""

    def encode_event(self, kind: str, fields: Mapping[str, FieldValue]) -> np.ndarray: ...

    def encode_profile(self, fields: Mapping[str, FieldValue]) -> np.ndarray: ...


@dataclass
class IngestResult:
    requests: list[ScoreRequest] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    applied: int = 0
    duplicates: int = 0  # same event id already stored: not scored again
    redelivered: int = 0  # offset already applied (restart): re-scored, state untouched
    outside_window: int = 0  # older than a full window: nothing changed, not scored
    unscored: int = 0  # stored, but the customer has no events yet (profile only)


class Ingestor:
    """Validates, encodes and stores a batch; returns what to score and what to dead-letter.

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
    """

    def __init__(
        self,
        store: CustomerSequenceStore,
        encoders: Mapping[str, Encoder],
        max_message_bytes: int,
        exposure_fields: Mapping[str, str],
    ) -> None:
        self._store = store
        self._encoders = dict(encoders)
        self._max_bytes = max_message_bytes
        self._exposure_fields = dict(exposure_fields)

    def swap(self, domain: str, encoder: Encoder) -> None:
        """Encode ``domain`` with ``encoder`` from the next batch on (a reloaded model's)."""
        self._encoders[domain] = encoder

    def ingest(self, records: Sequence[Record]) -> IngestResult:
        result = IngestResult()
        appends: list[Append] = []
        kept: list[tuple[Record, CustomerEvent]] = []
        for record in records:
            try:
                event = self._validate(record)
                appends.append(self._encode(record, event))
            except InvalidEvent as exc:
                result.dead_letters.append(
                    dead_letter(
                        record.value,
                        exc,
                        record.topic,
                        key=record.key,
                        partition=record.partition,
                        offset=record.offset,
                    )
                )
                continue
            kept.append((record, event))
        if not appends:
            return result
        for (record, event), stored in zip(kept, self._store.append_many(appends), strict=True):
            status = stored.status
            if status is AppendStatus.DUPLICATE:
                result.duplicates += 1
                continue
            if status is AppendStatus.OUTSIDE_WINDOW:
                result.outside_window += 1
                continue
            if status is AppendStatus.APPLIED:
                result.applied += 1
            else:
                result.redelivered += 1
            if len(stored.sequence) == 0:
                result.unscored += 1
                continue
            result.requests.append(
                ScoreRequest(
                    customer_id=event.customer_id,
                    domain=event.domain,
                    event_id=event.event_id,
                    event_time_ms=event_time_ms(event),
                    produced_ms=record.timestamp,
                    sequence=stored.sequence,
                )
            )
        return result

    def _validate(self, record: Record) -> CustomerEvent:
        if record.value is None:
            raise InvalidEvent("invalid_json", "message has no value (tombstone)")
        event = parse_event(record.value, self._max_bytes)
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

    def _encode(self, record: Record, event: CustomerEvent) -> Append:
        encoder = self._encoders[event.domain]
        exposure = None
        try:
            if event.kind == "profile":
                vector = encoder.encode_profile(event.fields)
                exposure = _exposure(event, self._exposure_fields.get(event.domain))
            else:
                vector = encoder.encode_event(event.kind, event.fields)
        except (ValueError, TypeError, KeyError) as exc:
            raise InvalidEvent("unencodable", f"{event.kind} fields: {exc}") from None
        if not np.all(np.isfinite(vector)):
            raise InvalidEvent("unencodable", f"{event.kind} fields encode to non-finite values")
        return Append(
            customer_id=event.customer_id,
            domain=event.domain,
            event_id=event.event_id,
            event_time_ms=event_time_ms(event),
            kind=event.kind,
            vector=vector,
            source=(record.topic, record.partition, record.offset),
            exposure=exposure,
        )


def _exposure(event: CustomerEvent, name: str | None) -> float | None:
    if name is None:
        return None
    value = event.fields.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
