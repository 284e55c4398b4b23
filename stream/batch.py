"""One batch through the stages, in memory: decode -> window -> score -> decide -> messages.

``BatchStages.process`` takes the records of one batch and returns a ``Batch``: the messages to
publish now (dead letters, scores, or score requests under the topic hand-off), the scores that
fire (explained later, off the scoring step: ``stream/alerting.py``), and the state to write
once they are published (per partition: the changed windows, alert states and latest scores,
snapshotted as this batch leaves them). Nothing here talks to Kafka; Redis is read only to load
customers a worker does not hold yet (one round trip for the batch, before anything changes,
so that call can be retried).

Three shapes, by which sides are given: events + scoring (ingest, inline hand-off), events only
(ingest, topic hand-off: requests out), scoring only (the inference worker: requests in).
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from state import (
    AlertState,
    AlertTable,
    AppendStatus,
    CustomerSequence,
    PartitionWrite,
    Windows,
    WindowTable,
)
from stream.alert_policy import decide_many
from stream.alerting import Alerter, Firing
from stream.challenger import Challenger, canary_rows, shadow_bytes
from stream.decode import Decoded, Encoder, decode_events, decode_requests, encode
from stream.events import DeadLetter, InvalidEvent, dead_letter
from stream.field_contract import FieldContract
from stream.ownership import Ownership
from stream.ports import Delivery, Record, StateCopy
from stream.requests import ScoreRequest
from stream.score_encoding import iso_ms, score_bytes
from stream.scorer import ScoredRows, Scorer, windows_of

__all__ = ["Batch", "BatchStages", "EventSide", "ScoreSide"]

log = logging.getLogger(__name__)

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
class ScoreSide:
    """Scoring: a scorer and the alert states per domain, and the alert policy."""

    scorers: dict[str, Scorer]
    alert_states: dict[str, AlertTable]
    alerter: Alerter
    challengers: dict[str, Challenger] = field(default_factory=dict)  # trials, per domain


@dataclass
class Batch:
    """What one batch produced and what it leaves to do."""

    serial: int
    records: Sequence[Record]
    dead_letters: list[DeadLetter] = field(default_factory=list)
    scores: list[tuple[bytes, bytes]] = field(default_factory=list)  # (key, RiskScore JSON)
    requests: list[tuple[bytes, bytes]] = field(default_factory=list)  # topic hand-off
    firing: list[Firing] = field(default_factory=list)
    writes: dict[int, PartitionWrite] = field(default_factory=dict)
    incarnations: dict[int, int] = field(default_factory=dict)
    first_offsets: dict[int, int] = field(default_factory=dict)
    produced_ms: list[np.ndarray] = field(default_factory=list)  # per score: event's timestamp
    scored_per_domain: dict[str, int] = field(default_factory=dict)
    stored: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    model_ms: list[float] = field(default_factory=list)
    # Field contract counts (``stream/field_contract.py``), keyed as in ``Decoded``.
    coerced: Counter = field(default_factory=Counter)
    unknown_fields: Counter = field(default_factory=Counter)
    unknown_kinds: Counter = field(default_factory=Counter)
    delivery: Delivery = field(default_factory=Delivery)
    # A challenger on trial (``stream/challenger.py``): its shadow scores, the rows it scored
    # (shadow: all; canary: its share), its model time, and rows it failed (champion's then).
    shadow_scores: list[tuple[bytes, bytes]] = field(default_factory=list)
    challenger_rows: Counter = field(default_factory=Counter)  # (domain, mode) -> rows
    challenger_failures: Counter = field(default_factory=Counter)  # (domain, mode) -> rows
    challenger_ms: list[float] = field(default_factory=list)


@dataclass
class _Meta:
    """Who each scored window belongs to (rows of a ``Windows``)."""

    customers: list[str]
    event_ids: list[str]
    times: np.ndarray  # int64 event time ms
    partitions: np.ndarray  # int32
    produced: np.ndarray  # int64: Kafka timestamp of the inbound record (latency's start)
    records: list[Record]

    def take(self, keep: np.ndarray) -> _Meta:
        rows = keep.tolist()
        return _Meta(
            [self.customers[i] for i in rows],
            [self.event_ids[i] for i in rows],
            self.times[keep],
            self.partitions[keep],
            self.produced[keep],
            [self.records[i] for i in rows],
        )


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
                meta = _Meta(
                    [a.customers[i] for i in scored.tolist()],
                    [a.event_ids[i] for i in scored.tolist()],
                    a.times_ms[scored],
                    a.partitions[scored],
                    d.timestamps[rows],
                    [d.records[d.rows[i]] for i in rows.tolist()],
                )
                w = applied.windows
            else:
                w, meta = self._request_windows(unit, batch)
            if not len(w):
                continue
            if self.scoring is None:
                batch.requests += _requests(unit.domain, w, meta)
                batch.produced_ms.append(meta.produced)
                continue
            self._score(
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
            batch.dead_letters.append(
                dead_letter(
                    record.value,
                    InvalidEvent(
                        "event_id_conflict",
                        f"event_id {a.event_ids[i]!r} of customer {a.customers[i]!r} is already "
                        f"stored with other content (stored content hash "
                        f"{int(applied.stored_hash[i]):016x}, this one {int(a.hashes[i]):016x}): "
                        "event ids must name one event",
                    ),
                    record.topic,
                    key=record.key,
                    partition=record.partition,
                    offset=record.offset,
                )
            )

    def _request_windows(self, unit: _Unit, batch: Batch):
        """Score requests handed over by an ingest worker, as windows (the inference worker)."""
        scorer = self.scoring.scorers[unit.domain]
        kept = []
        for record, request in unit.requests:
            seq = request.sequence
            if (
                seq.events.ndim != 2
                or seq.events.shape[1] != scorer.event_dim
                or (seq.profile is not None and seq.profile.shape != (scorer.profile_dim,))
            ):
                batch.dead_letters.append(_incompatible(record, request, scorer))
                continue
            kept.append((record, request))
        unit.requests = kept
        requests = [r for _, r in kept]
        w = windows_of(requests, scorer.event_dim, scorer.profile_dim)
        meta = _Meta(
            [r.customer_id for r in requests],
            [r.event_id for r in requests],
            np.array([r.event_time_ms for r in requests], np.int64),
            np.array([rec.partition for rec, _ in kept], np.int32),
            np.array([r.produced_ms for r in requests], np.int64),
            [rec for rec, _ in kept],
        )
        return w, meta

    def _score(self, domain, w, meta, batch, now, serial, publish, alerts_out, scores_out, epochs):
        """Score, then decide. A canary takes its customers' rows (a customer is wholly on one
        side, so each customer's scores keep their order); a shadow rescores the champion's."""
        champion = self.scoring.scorers[domain]
        challenger = self.scoring.challengers.get(domain) if publish else None
        sides = [(champion, w, meta)]
        if challenger is not None and challenger.mode == "canary":
            mine = canary_rows(meta.customers, challenger.percent)
            if mine.any():
                theirs, ours = np.flatnonzero(mine), np.flatnonzero(~mine)
                sides = [
                    (champion, w.take(ours), meta.take(ours)),
                    (challenger.scorer, w.take(theirs), meta.take(theirs)),
                ]
        shadow = challenger if challenger is not None and challenger.mode == "shadow" else None
        for scorer, w_side, meta_side in sides:
            if len(w_side):
                self._score_side(
                    domain, scorer, shadow, w_side, meta_side, batch, now, serial, publish,
                    alerts_out, scores_out, epochs,
                )  # fmt: skip

    def _score_side(
        self, domain, scorer, shadow, w, meta, batch, now, serial, publish, alerts_out,
        scores_out, epochs,
    ):  # fmt: skip
        champion = self.scoring.scorers[domain]
        started = time.perf_counter()
        if scorer is champion:
            rows, w, meta = self._forward(scorer, w, meta, batch)
        else:  # the canary's rows
            batch.challenger_rows[(domain, "canary")] += len(w)
            try:
                rows = scorer.score_windows(w)
            except Exception:  # the champion serves them instead: nothing lost
                log.exception("%s: canary %s failed on %d rows", domain, scorer.version, len(w))
                batch.challenger_failures[(domain, "canary")] += len(w)
                scorer = champion
                rows, w, meta = self._forward(scorer, w, meta, batch)
            else:
                batch.challenger_ms.append((time.perf_counter() - started) * 1000)
        model_ms = (time.perf_counter() - started) * 1000
        customers, event_ids, times, partitions = (
            meta.customers,
            meta.event_ids,
            meta.times,
            meta.partitions,
        )
        batch.model_ms.append(model_ms)
        if not len(w):
            return
        if shadow is not None:
            self._shadow(domain, shadow, w, meta, rows, champion, model_ms, batch, now)
        tops = _top_events(w, rows)
        quantile_names = scorer.quantile_names
        scored_at = iso_ms(int(now * 1000))
        latest: dict[str, tuple[int, bytes]] = {}
        exposure = [None if e != e else e for e in w.exposure.tolist()]  # NaN: unknown
        for i, customer in enumerate(customers):
            q = None
            if rows.quantiles is not None:
                q = dict(zip(quantile_names, rows.quantiles[i].tolist(), strict=True))
            body = score_bytes(
                customer_id=customer,
                domain=domain,
                event_id=event_ids[i],
                event_time_ms=int(times[i]),
                probability=float(rows.probability[i]),
                quantiles=q,
                model_version=scorer.version,
                scored_at=scored_at,
                top_events=tops[i],
                exposure=exposure[i],
            )
            latest[customer] = (int(partitions[i]), body)
            if publish:
                batch.scores.append((customer.encode(), body))
        scores_out += [(domain, p, c, body) for c, (p, body) in latest.items()]
        if publish:
            batch.produced_ms.append(meta.produced)
            batch.scored_per_domain[domain] = batch.scored_per_domain.get(domain, 0) + len(w)
        fire = self._decide(
            domain, customers, partitions, rows.probability, times, serial, now, alerts_out, epochs
        )
        if publish and fire.size:
            batch.firing.append(
                Firing(
                    domain,
                    scorer,
                    w.take(fire),
                    [customers[i] for i in fire.tolist()],
                    [event_ids[i] for i in fire.tolist()],
                    rows.probability[fire],
                    [tops[i] for i in fire.tolist()],
                )
            )

    def _forward(self, scorer: Scorer, w: Windows, meta: _Meta, batch: Batch):
        """The batch's forward pass; if it fails, row by row (``_score_each``)."""
        try:
            return scorer.score_windows(w), w, meta
        except Exception:  # one bad window must not fail the batch: find it
            log.exception(
                "model %s: scoring a batch of %d failed; one by one", scorer.version, len(w)
            )
            rows, keep = self._score_each(scorer, w, meta, batch)
            return rows, w.take(keep), meta.take(keep)

    def _shadow(self, domain, shadow, w, meta, rows, champion, champion_ms, batch, now) -> None:
        """The shadow's scores of the windows the champion just scored: ``batch.shadow_scores``
        only. Whatever it raises is logged and counted; the champion's output is untouched."""
        started = time.perf_counter()
        batch.challenger_rows[(domain, "shadow")] += len(w)
        try:
            theirs = shadow.scorer.score_windows(w).probability
        except Exception:
            log.exception("%s: shadow %s failed on %d rows", domain, shadow.scorer.version, len(w))
            batch.challenger_failures[(domain, "shadow")] += len(w)
            return
        shadow_ms = (time.perf_counter() - started) * 1000
        batch.challenger_ms.append(shadow_ms)
        threshold = self.scoring.alerter.policy.threshold
        scored_at = iso_ms(int(now * 1000))
        shadow_us, champion_us = shadow_ms * 1000 / len(w), champion_ms * 1000 / len(w)
        for i, customer in enumerate(meta.customers):
            p = float(theirs[i])
            body = shadow_bytes(
                customer_id=customer,
                domain=domain,
                event_id=meta.event_ids[i],
                event_time_ms=int(meta.times[i]),
                probability=p,
                model_version=shadow.scorer.version,
                champion_version=champion.version,
                champion_probability=float(rows.probability[i]),
                would_alert=p >= threshold,
                scored_at=scored_at,
                shadow_us=shadow_us,
                champion_us=champion_us,
            )
            batch.shadow_scores.append((customer.encode(), body))

    def _score_each(self, scorer: Scorer, w: Windows, meta: _Meta, batch: Batch):
        """Score one by one; whatever still fails becomes a ``scoring_failed`` dead letter."""
        parts, keep = [], []
        for i in range(len(w)):
            one = w.take(np.array([i]))
            try:
                parts.append(scorer.score_windows(one))
            except Exception as exc:
                record = meta.records[i]
                error = InvalidEvent("scoring_failed", f"{type(exc).__name__}: {exc}")
                batch.dead_letters.append(
                    dead_letter(
                        record.value,
                        error,
                        record.topic,
                        key=record.key,
                        partition=record.partition,
                        offset=record.offset,
                    )
                )
                continue
            keep.append(i)
        keep_index = np.array(keep, np.int64)
        if not parts:
            empty = np.zeros((0, 0))
            return ScoredRows(np.zeros(0), None, empty.astype(np.int64), empty), keep_index
        k = max(p.top.shape[1] for p in parts)
        pad = lambda a, fill: np.pad(a, ((0, 0), (0, k - a.shape[1])), constant_values=fill)  # noqa: E731
        return (
            ScoredRows(
                np.concatenate([p.probability for p in parts]),
                None
                if parts[0].quantiles is None
                else np.concatenate([p.quantiles for p in parts]),
                np.concatenate([pad(p.top, -1) for p in parts]),
                np.concatenate([pad(p.weights, 0.0) for p in parts]),
            ),
            keep_index,
        )

    def _decide(self, domain, customers, partitions, probability, times, serial, now, out, epochs):
        """The alert policy over the scores, in order (a customer scored twice decides twice):
        which rows fire; the changed alert states go to ``out``."""
        table = self.scoring.alert_states[domain]
        policy = self.scoring.alerter.policy
        slots = table.slots(customers, partitions, now, serial)
        fire = np.zeros(len(customers), bool)
        changed = []
        seconds = times / 1000.0
        for r in _rounds_of(slots):
            s = slots[r]
            armed, last = table.armed[s], table.last_s[s]
            f, new_armed, new_last = decide_many(policy, armed, last, probability[r], seconds[r])
            moved = (new_armed != armed) | ~(
                (new_last == last) | (np.isnan(new_last) & np.isnan(last))
            )
            table.armed[s], table.last_s[s] = new_armed, new_last
            fire[r] = f
            changed.append(s[moved])
        if changed:
            for customer, partition, record in table.records(np.concatenate(changed), epochs):
                out.append((domain, partition, customer, record))
        return np.flatnonzero(fire)

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


def _rounds_of(slots: np.ndarray) -> list[np.ndarray]:
    """Row indexes in rounds, each holding a slot at most once, rows kept in order."""
    if len(np.unique(slots)) == len(slots):
        return [np.arange(len(slots))]
    rounds: list[list[int]] = []
    seen: dict[int, int] = {}
    for i, s in enumerate(slots.tolist()):
        r = seen.get(s, -1) + 1
        seen[s] = r
        if r == len(rounds):
            rounds.append([])
        rounds[r].append(i)
    return [np.array(r, np.int64) for r in rounds]


def _top_events(w: Windows, rows: ScoredRows) -> list[list[tuple[str, int, str, float]]]:
    """Per row, (event id, time ms, kind, weight) of the most attended events."""
    out = []
    kinds = w.kinds
    for i in range(len(w)):
        positions = rows.top[i].tolist()
        if not positions or positions[0] < 0:
            out.append([])
            continue
        ids = w.ids[i].split(b"\0")
        times, codes, weights = w.times_ms[i], w.kind_codes[i], rows.weights[i]
        out.append(
            [
                (ids[t].decode(), int(times[t]), kinds[codes[t]], float(weights[j]))
                for j, t in enumerate(positions)
                if t >= 0
            ]
        )
    return out


def _requests(domain: str, w: Windows, meta: _Meta) -> list[tuple[bytes, bytes]]:
    """Score requests for the inference workers (topic hand-off): the exact windows."""
    customers, event_ids, times, produced = (
        meta.customers,
        meta.event_ids,
        meta.times,
        meta.produced,
    )
    kinds = w.kinds
    out = []
    for i, customer in enumerate(customers):
        length = int(w.lengths[i])
        sequence = CustomerSequence(
            event_ids=w.event_ids(i),
            event_times_ms=w.times_ms[i, :length],
            kinds=[kinds[c] for c in w.kind_codes[i, :length].tolist()],
            events=w.events[i, :length],
            profile=w.profile[i] if w.has_profile[i] else None,
            exposure=None if np.isnan(w.exposure[i]) else float(w.exposure[i]),
        )
        request = ScoreRequest(
            customer, domain, event_ids[i], int(times[i]), int(produced[i]), sequence
        )
        out.append((customer.encode(), request.to_bytes()))
    return out


def _incompatible(record: Record, request: ScoreRequest, scorer: Scorer) -> DeadLetter:
    error = InvalidEvent(
        "incompatible_request",
        f"window of width {request.sequence.events.shape[1:]} does not fit model "
        f"{scorer.version} (event_dim {scorer.event_dim}, profile_dim {scorer.profile_dim})",
    )
    return dead_letter(
        record.value,
        error,
        record.topic,
        key=record.key,
        partition=record.partition,
        offset=record.offset,
    )
