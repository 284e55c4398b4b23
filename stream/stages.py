"""One batch through the stages, in memory: decode -> window -> score -> decide -> messages.

``BatchStages`` takes the records of one batch and fills a ``Batch`` (``stream/batch.py``).
Nothing here talks to Kafka; Redis is read only to load customers a worker does not hold yet
(one round trip for the batch, before anything changes, so that call can be retried).

Three shapes, by which sides are given: events + scoring (ingest, inline hand-off), events only
(ingest, topic hand-off: requests out, ``stream/handoff.py``), scoring only (the inference
worker: requests in). The scoring side is ``stream/score_side.py``.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from crmrisk.state import AlertState, AppendStatus, PartitionWrite, WindowTable
from crmrisk.stream.batch import Batch, RowMeta
from crmrisk.stream.decode import Decoded, decode_events, decode_requests, rejected
from crmrisk.stream.encode import Encoder, encode
from crmrisk.stream.events import InvalidEvent
from crmrisk.stream.field_contract import FieldContract
from crmrisk.stream.handoff import request_windows, score_requests
from crmrisk.stream.ownership import Ownership
from crmrisk.stream.ports import Record, StateCopy
from crmrisk.stream.requests import ScoreRequest
from crmrisk.stream.score_side import ScoreSide

__all__ = ["BatchStages", "EventSide"]

_STATUS_NAMES = {
    int(AppendStatus.APPLIED): "applied",
    int(AppendStatus.DUPLICATE): "duplicates",
    int(AppendStatus.REDELIVERED): "redelivered",
    int(AppendStatus.OUTSIDE_WINDOW): "outside_window",
}


@dataclass
class EventSide:
    """Ingest: events are validated, encoded and applied to the partition-owned windows."""

    encoders: dict[str, Encoder]
    contracts: dict[str, FieldContract]  # per domain, from its encoder's feature spec
    windows: dict[str, WindowTable]
    exposure_fields: Mapping[str, str]
    max_message_bytes: int
    max_future_s: float | None


@dataclass
class _Unit:
    """One domain's share of a batch, between the stages."""

    domain: str
    appends: object = None  # state.Appends (events)
    rows: np.ndarray | None = None  # their rows in the Decoded columns
    requests: list[tuple[Record, ScoreRequest]] = field(default_factory=list)  # (infer)


class BatchStages:
    """The stages of one worker, over the state it owns (``ownership``, ``state``)."""

    def __init__(
        self,
        topic: str,
        ownership: Ownership,
        state: StateCopy,
        *,
        events: EventSide | None,
        scoring: ScoreSide | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if events is None and scoring is None:
            raise ValueError("a worker needs events, scoring, or both")
        self.topic = topic
        self.ownership = ownership
        self.state = state
        self.events = events
        self.scoring = scoring
        self._clock = clock

    @property
    def domains(self) -> list[str]:
        side = self.events or self.scoring
        return list(side.encoders if isinstance(side, EventSide) else side.scorers)

    # -- the stages --------------------------------------------------------------------------

    def decode(self, records: Sequence[Record], batch: Batch) -> tuple[Decoded | None, list]:
        """Stage 1: records -> per-domain units (pure; dead letters into ``batch``)."""
        if self.events is None:
            return None, self._decode_requests(records, batch)
        e = self.events
        horizon = None
        if e.max_future_s is not None:
            horizon = self._clock() * 1000 + e.max_future_s * 1000
        d = decode_events(records, e.encoders, e.max_message_bytes, horizon, e.max_future_s)
        units = []
        for domain, index in _groups(d.domains):
            encoder = e.encoders[domain]
            table = e.windows[domain]
            appends, rows = encode(
                d,
                index,
                encoder,
                e.contracts[domain],
                table.event_dim,
                table.profile_dim,
                e.exposure_fields.get(domain),
                self.ownership.redelivered,
            )
            units.append(_Unit(domain, appends, rows))
        batch.dead_letters += d.dead_letters
        batch.coerced, batch.unknown_fields, batch.unknown_kinds = (
            d.coerced,
            d.unknown_fields,
            d.unknown_kinds,
        )
        return d, units

    def _decode_requests(self, records: Sequence[Record], batch: Batch) -> list[_Unit]:
        assert self.scoring is not None
        by_domain, dead = decode_requests(records, self.scoring.scorers)
        batch.dead_letters += dead
        return [_Unit(domain, requests=pairs) for domain, pairs in by_domain.items()]

    def load(self, units: list[_Unit], fresh: set[int]) -> None:
        """Stage 2: hold every customer of the batch, loading the ones not held from Redis (one
        round trip); customers of ``fresh`` partitions (restored from nothing) start empty.
        Changes nothing before its read succeeded: safe to retry."""
        now = self._clock()
        for unit in units:
            customers, partitions = self._customers(unit)
            by_customer = dict(zip(customers, partitions, strict=True))
            windows = (
                self.events.windows[unit.domain].missing(customers, now) if self.events else []
            )
            alerts = []
            if self.scoring is not None:
                alerts = self.scoring.alert_states[unit.domain].missing(customers, now)
            need_w = [c for c in windows if by_customer[c] not in fresh]
            need_a = [c for c in alerts if by_customer[c] not in fresh]
            loaded_w, loaded_a = self.state.read(unit.domain, need_w, need_a)
            got_w, got_a = (
                dict(zip(need_w, loaded_w, strict=True)),
                dict(zip(need_a, loaded_a, strict=True)),
            )
            for c in windows:
                self.events.windows[unit.domain].load(c, by_customer[c], got_w.get(c))
            for c in alerts:
                record = got_a.get(c)
                state = (
                    AlertState()
                    if record is None
                    else AlertState(record.armed, record.last_alert_s)
                )
                self.scoring.alert_states[unit.domain].load(c, by_customer[c], state)

    def _customers(self, unit: _Unit) -> tuple[list[str], list[int]]:
        if unit.appends is not None:
            return unit.appends.customers, unit.appends.partitions.tolist()
        return [r.customer_id for _, r in unit.requests], [
            rec.partition for rec, _ in unit.requests
        ]

    def apply(self, d: Decoded | None, units: list[_Unit], batch: Batch, publish: bool) -> None:
        """Stages 3-5 (memory only): window, score, decide, messages; then the state to write.
        ``publish=False`` (a restore): nothing to publish, alerts decided but never raised."""
        now = self._clock()
        serial = batch.serial
        epochs = self.ownership.epochs()
        windows_out: list[tuple[str, int, str, bytes]] = []
        alerts_out: list[tuple[str, int, str, bytes]] = []
        scores_out: list[tuple[str, int, str, bytes]] = []
        for unit in units:
            if unit.appends is not None:
                table = self.events.windows[unit.domain]
                applied = table.apply(unit.appends, now, serial)
                self._statuses(d, unit, applied, batch)
                for customer, partition, record in table.records(applied.slots, epochs):
                    windows_out.append((unit.domain, partition, customer, record))
                a = unit.appends
                scored = applied.scored
                rows = unit.rows[scored]
                meta = RowMeta(
                    [a.customers[i] for i in scored.tolist()],
                    [a.event_ids[i] for i in scored.tolist()],
                    a.times_ms[scored],
                    a.partitions[scored],
                    d.timestamps[rows],
                    [d.records[d.rows[i]] for i in rows.tolist()],
                )
                w = applied.windows
            else:
                scorer = self.scoring.scorers[unit.domain]
                w, meta, unit.requests = request_windows(scorer, unit.requests, batch)
            if not len(w):
                continue
            if self.scoring is None:
                batch.requests += score_requests(unit.domain, w, meta)
                batch.produced_ms.append(meta.produced)
                continue
            self.scoring.score(
                unit.domain, w, meta, batch, now, serial, publish, alerts_out, scores_out, epochs
            )
        self._plan_writes(batch, windows_out, alerts_out, scores_out)

    def _statuses(self, d: Decoded, unit: _Unit, applied, batch: Batch) -> None:
        status = applied.status
        for value, name in _STATUS_NAMES.items():
            batch.stored[name] += int((status == value).sum())
        batch.stored["unscored"] += int(
            ((status == AppendStatus.APPLIED) | (status == AppendStatus.REDELIVERED)).sum()
            - len(applied.scored)
        )
        a = unit.appends
        for i in np.flatnonzero(status == AppendStatus.CONFLICT).tolist():
            record = d.records[d.rows[unit.rows[i]]]
            error = InvalidEvent(
                "event_id_conflict",
                f"event_id {a.event_ids[i]!r} of customer {a.customers[i]!r} is already stored "
                f"with other content (stored content hash {int(applied.stored_hash[i]):016x}, "
                f"this one {int(a.hashes[i]):016x}): event ids must name one event",
            )
            batch.dead_letters.append(rejected(record, error))

    def _plan_writes(self, batch: Batch, windows, alerts, scores) -> None:
        """Per partition of the batch: its fence (via ``ownership``) and its state to write."""
        partitions = np.fromiter((r.partition for r in batch.records), np.int64)
        offsets = np.fromiter((r.offset for r in batch.records), np.int64)
        last: dict[int, int] = {}
        for p in np.unique(partitions).tolist():
            mine = offsets[partitions == p]
            last[p], batch.first_offsets[p] = int(mine.max()), int(mine.min())
        for p, offset in last.items():
            epoch, expected, incarnation = self.ownership.plan(p, offset + 1)
            batch.writes[p] = PartitionWrite(p, epoch, expected, offset + 1)
            batch.incarnations[p] = incarnation
        for out, name in ((windows, "windows"), (alerts, "alerts"), (scores, "scores")):
            for domain, partition, customer, value in out:
                write = batch.writes.get(partition)
                if write is not None:  # a customer's partition is its events' partition
                    getattr(write, name).append((domain, customer, value))


def _groups(domains: Sequence[str]) -> list[tuple[str, np.ndarray]]:
    """Row indexes per domain, in first-seen order (one domain: no grouping work)."""
    if not domains:
        return []
    first = domains[0]
    if all(d == first for d in domains):
        return [(first, np.arange(len(domains)))]
    groups: dict[str, list[int]] = defaultdict(list)
    for i, d in enumerate(domains):
        groups[d].append(i)
    return [(d, np.array(rows, np.int64)) for d, rows in groups.items()]
