"""Decode: a batch of Kafka records -> validated columns (``stream/encode.py`` encodes them per
domain); bad input -> dead letters.

Columnar: a valid event costs one msgspec decode (in C, against a schema that is a strict
subset of the wire contract in ``stream/events.py``) and a few list entries; no pydantic model
is built for it. Whatever the fast path does not accept (a schema violation, a value it cannot
vouch for, an id with surrounding blanks, an unknown domain, a mismatched key ...) takes the
slow path, ``parse_event`` and the checks in contract order, which either accepts it exactly as
the contract does or builds the dead letter with its precise reason. So the wire contract and
every dead-letter reason are the contract's own; the fast path only decides faster.

``event_time`` is RFC 3339 text with an offset, or Unix time as a JSON number (or its text):
seconds when ``|n| <= 2e10`` (up to the year 2603), milliseconds beyond (the contract's rule,
pydantic's; an epoch in ms is beyond 2e10 from August 1970 on). The fast path decodes integer
epochs itself by that rule; any other number takes the slow path.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Container, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

import msgspec
import numpy as np

from crmrisk.stream.events import DeadLetter, InvalidEvent, dead_letter, parse_event
from crmrisk.stream.ports import Record
from crmrisk.stream.requests import ScoreRequest

__all__ = ["Decoded", "decode_events", "decode_requests", "rejected"]

log = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_SECONDS_UP_TO = 20_000_000_000  # an epoch number up to this is in s, beyond it in ms
_MS_UP_TO = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z: later ones go slow (refused)

_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
_Text = Annotated[str, msgspec.Meta(max_length=4096)]
_Name = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class _Event(msgspec.Struct, forbid_unknown_fields=True):
    """The common shape of a valid event; stricter than the contract, never looser."""

    event_id: _Id
    customer_id: _Id
    event_time: Annotated[datetime, msgspec.Meta(tz=True)] | int | float  # float: goes slow
    domain: str  # must be a served domain (checked after): any other goes slow
    kind: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    fields: Annotated[
        dict[_Name, float | int | _Text | bool | None], msgspec.Meta(max_length=512)
    ] = {}
    schema_version: Literal[1] = 1


_decode = msgspec.json.Decoder(_Event).decode


@dataclass
class Decoded:
    """The batch's valid events as columns (row i is ``records[rows[i]]``), and dead letters."""

    records: Sequence[Record]
    rows: list[int] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)
    customers: list[str] = field(default_factory=list)
    domains: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    fields: list[dict] = field(default_factory=list)
    times_ms: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    partitions: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    offsets: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    timestamps: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    dead_letters: list[DeadLetter] = field(default_factory=list)
    # Field contract counts (``encode``): (domain, field, "number" | "missing"), (domain, name).
    coerced: Counter = field(default_factory=Counter)
    unknown_fields: Counter = field(default_factory=Counter)
    unknown_kinds: Counter = field(default_factory=Counter)

    def __len__(self) -> int:
        return len(self.rows)

    def reject(self, record: Record, error: InvalidEvent) -> None:
        self.dead_letters.append(rejected(record, error))


def rejected(record: Record, error: InvalidEvent) -> DeadLetter:
    """A consumed record as a dead letter: where it came from, and why it was refused."""
    return dead_letter(
        record.value,
        error,
        record.topic,
        key=record.key,
        partition=record.partition,
        offset=record.offset,
    )


def decode_events(
    records: Sequence[Record],
    domains: Container[str],
    max_bytes: int,
    horizon_ms: float | None,
    max_future_s: float | None,
) -> Decoded:
    """Validate ``records`` (events of ``domains``; others are ``unknown_domain``) into columns.

    ``horizon_ms``: events dated later are ``future_event`` (None: no limit).
    """
    out = Decoded(records)
    valid: list[tuple[int, object]] = []
    for i, record in enumerate(records):
        value = record.value
        event = None
        if value is not None and len(value) <= max_bytes:
            try:
                event = _decode(value)
            except (msgspec.ValidationError, msgspec.DecodeError):
                event = None
            if event is not None and not _clean(event, record, domains):
                event = None
        if event is None:
            event = _slow(record, out, domains, max_bytes, horizon_ms, max_future_s)
            if event is None:
                continue
        valid.append((i, event))
    times = np.fromiter(((e.event_time - _EPOCH) // _MS for _, e in valid), np.int64, len(valid))
    if horizon_ms is not None and len(valid) and (late := times > horizon_ms).any():
        for j in np.flatnonzero(late).tolist():
            i, event = valid[j]
            out.reject(records[i], _future(event.event_time, max_future_s))
        keep = ~late
        valid = [v for v, k in zip(valid, keep.tolist(), strict=True) if k]
        times = times[keep]
    out.rows = [i for i, _ in valid]
    out.event_ids = [e.event_id for _, e in valid]
    out.customers = [e.customer_id for _, e in valid]
    out.domains = [e.domain for _, e in valid]
    out.kinds = [e.kind for _, e in valid]
    out.fields = [e.fields for _, e in valid]
    out.times_ms = times
    chosen = [records[i] for i in out.rows]
    out.partitions = np.fromiter((r.partition for r in chosen), np.int64, len(chosen))
    out.offsets = np.fromiter((r.offset for r in chosen), np.int64, len(chosen))
    out.timestamps = np.fromiter((r.timestamp for r in chosen), np.int64, len(chosen))
    return out


def _clean(event: _Event, record: Record, domains: Container[str]) -> bool:
    """The checks after the schema, on the fast path: anything doubtful goes slow."""
    eid, cid = event.event_id, event.customer_id
    when = event.event_time
    if type(when) is not datetime:  # Unix time: an int by the contract's rule, else slow
        if type(when) is not int or not 0 <= when <= _MS_UP_TO:
            return False
        if when <= _SECONDS_UP_TO:
            event.event_time = _EPOCH + timedelta(seconds=when)
        else:
            event.event_time = _EPOCH + timedelta(milliseconds=when)
    return (
        event.domain in domains
        and eid.strip() == eid  # the contract strips blanks: let it
        and cid.strip() == cid
        and "\x00" not in eid
        and "\x00" not in cid
        and (record.key is None or record.key == cid.encode())
    )


def _slow(
    record: Record,
    out: Decoded,
    domains: Container[str],
    max_bytes: int,
    horizon_ms: float | None,
    max_future_s: float | None,
):
    """The contract's own path: a valid event (a ``CustomerEvent``), or None and a dead letter."""
    try:
        if record.value is None:
            raise InvalidEvent("invalid_json", "message has no value (tombstone)")
        event = parse_event(record.value, max_bytes)
        if horizon_ms is not None and (event.event_time - _EPOCH) // _MS > horizon_ms:
            raise _future(event.event_time, max_future_s)
        if event.domain not in domains:
            raise InvalidEvent(
                "unknown_domain",
                f"domain: {event.domain!r} has no model here (known: {sorted(domains)})",
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
    except InvalidEvent as exc:
        out.reject(record, exc)
    except Exception as exc:  # a bug or a limit we did not foresee: never a crash loop
        log.exception("unexpected error validating %s/%s", record.partition, record.offset)
        out.reject(record, InvalidEvent("unparseable", f"{type(exc).__name__}: {exc}"))
    return None


def _future(when: datetime, max_future_s: float | None) -> InvalidEvent:
    return InvalidEvent(
        "future_event",
        f"event_time: {when.astimezone(UTC).isoformat()} is more than "
        f"{max_future_s or 0:.0f} s ahead of the clock",
    )


def decode_requests(
    records: Sequence[Record], domains: Container[str]
) -> tuple[dict[str, list[tuple[Record, ScoreRequest]]], list[DeadLetter]]:
    """Score requests (topic hand-off) per domain; malformed ones, non-finite windows and
    unserved domains become dead letters."""
    by_domain: dict[str, list[tuple[Record, ScoreRequest]]] = {}
    out = Decoded(records)
    for record in records:
        try:
            if record.value is None:
                raise ValueError("message has no value (tombstone)")
            request = ScoreRequest.from_bytes(record.value)
        except Exception as exc:  # whatever the bytes are, a dead letter, never a crash
            out.reject(
                record,
                InvalidEvent("invalid_request", f"score request: {type(exc).__name__}: {exc}"),
            )
            continue
        profile = request.sequence.profile
        if not np.isfinite(request.sequence.events).all() or (
            profile is not None and not np.isfinite(profile).all()
        ):
            out.reject(record, InvalidEvent("non_finite", "score request: NaN or infinite inputs"))
            continue
        if request.domain not in domains:
            out.reject(
                record,
                InvalidEvent(
                    "unknown_domain",
                    f"domain: {request.domain!r} has no model here (known: {sorted(domains)})",
                ),
            )
            continue
        by_domain.setdefault(request.domain, []).append((record, request))
    return by_domain, out.dead_letters
