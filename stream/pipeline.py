"""The scoring loop: batches in, scores out at once, alerts and state behind them, commits in order.

``Pipeline.step`` takes one batch and runs its stages in memory (``stream/batch.py``: decode ->
window -> score -> decide -> messages) on the state of the partitions this worker owns, then
publishes its dead letters and scores (or score requests) at once and hands the batch to the
completer. The completer, one batch after another and in order, while the loop goes on with the
next batches:

1. waits until Kafka acknowledged the batch's messages (lost ones are sent again);
2. explains the scores that fire (reason codes, in the alert stage: ``stream/alerting.py``, a
   thread or a process of its own) and publishes the alerts, and waits for their
   acknowledgement: scores never wait for explanations;
3. writes the state the batch left (changed windows, alert states, latest scores) to Redis, one
   fenced write per group of batches (``state.PartitionFence``), so Redis never claims what
   Kafka lacks;
4. commits the batch's offsets.

A crash anywhere before 4 replays the batch: the records the state already holds are
redeliveries (scored as of themselves, not applied again: the state is exactly-once), scores
and alerts are re-published (at-least-once, an alert with the same ``alert_id``). At most
``max_inflight`` batches wait for the completer (memory and redelivery stay bounded).

Partition ownership (``stream/ownership.py``): a partition is claimed before its first records
are processed, and restored from the topic (``history``) first when Redis lost its state or a
tail of it. A write refused because a newer owner claimed the partition stops it here until a
new assignment; one refused because Redis lost the state rewinds the partition to the batch and
rebuilds it. A revoked partition's in-flight batches are completed first, then its state is
dropped.

Outages (``stream/outage.py``): a step that fails because Redis or the broker is unreachable is
retried in place, with backoff, nothing committed meanwhile; ``health`` says so.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from state import PartitionWrite
from stream.alerting import AlertStage, ThreadAlerts
from stream.batch import Batch, BatchStages
from stream.challenger import Challenger
from stream.events import RiskAlert
from stream.kafka_io import DeliveryFailed
from stream.metrics import WorkerMetrics
from stream.outage import Outage
from stream.ownership import Restore
from stream.ports import Delivery, History, Record, RecordSource, Sink, StateCopy

__all__ = ["Pipeline", "StepReport", "Topics"]

log = logging.getLogger(__name__)

_MAX_LOSSES = 3  # Redis lost a partition's state this often in a row: something is wrong


@dataclass
class StepReport:
    consumed: int = 0
    dead_letters: int = 0
    scores: int = 0
    alerts: int = 0  # alerts that fire (published once explained, by the completer)


@dataclass(frozen=True)
class Topics:
    """Where the pipeline produces: dead letters, scores, alerts; requests for the hand-off."""

    dead_letters: str
    scores: str
    alerts: str
    score_requests: str | None = None
    shadow_scores: str | None = None  # a shadow challenger's scores (none without a trial)


class Pipeline:
    """One worker's loop over one input topic."""

    def __init__(
        self,
        source: RecordSource,
        sink: Sink,
        state: StateCopy,
        stages: BatchStages,
        topics: Topics,
        metrics: WorkerMetrics,
        *,
        history: History | None = None,
        between_batches: Callable[[], Mapping[str, object]] | None = None,
        trials_between_batches: Callable[[], Mapping[str, Challenger | None]] | None = None,
        on_alert: Callable[[RiskAlert], None] | None = None,
        outage: Outage | None = None,
        alert_stage: AlertStage | None = None,
        max_inflight: int = 4,
        max_customers: int = 1_000_000,
        delivery_timeout_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if stages.scoring is None and topics.score_requests is None:
            raise ValueError("a pipeline without scoring needs a score_requests topic")
        self.source = source
        self.sink = sink
        self.state = state
        self.stages = stages
        self.ownership = stages.ownership
        self.topics = topics
        self.metrics = metrics
        self.history = history
        self._between_batches = between_batches
        self._trials_between_batches = trials_between_batches
        self._on_alert = on_alert
        self.outage = outage or Outage(metrics.outage_retries)
        self.max_customers = max_customers
        self._delivery_timeout_s = delivery_timeout_s
        self._clock = clock
        self._serial = itertools.count(1)
        self.max_inflight = max_inflight
        self._queue: asyncio.Queue[Batch] = asyncio.Queue(max_inflight)
        self._completer: asyncio.Task | None = None
        self._failure: BaseException | None = None
        self._alerts: AlertStage | None = alert_stage or (
            ThreadAlerts(stages.scoring.alerter) if stages.scoring is not None else None
        )
        self._refused: dict[int, int | None] = {}  # partition -> rewind to (None: fenced)
        self._losses: dict[int, int] = defaultdict(int)
        self._inflight: dict[int, int] = defaultdict(int)  # batches in flight per partition
        self.durable_serial = 0  # batches up to it are written and committed

    # -- the loop ------------------------------------------------------------------------------

    def health(self) -> str | None:
        """None unless the worker is riding out an outage (for ``/health``)."""
        return self.outage.health()

    async def ready(self) -> None:
        """Return once the alert stage has loaded the served models (tests and benchmarks wait;
        the worker does not: the stage explains in a thread until then)."""
        if self._alerts is not None:
            await self._alerts.ready()

    def swap(self, domain: str, kit: object) -> None:
        """Serve ``domain`` with a reloaded model kit (``stream.models.DomainModel``), whose
        encoder is the same (the watcher refuses others: windows are stored encoded)."""
        if self.stages.events is not None:
            self.stages.events.encoders[domain] = kit.encoder
        if self.stages.scoring is not None:
            self.stages.scoring.scorers[domain] = kit.scorer
            source = getattr(kit.scorer, "source", None)
            if source is not None:
                self._alerts.warm({domain: source})  # loaded before its first alert
        log.info("%s: now scoring with model %s", domain, kit.version)

    def try_out(self, domain: str, challenger: Challenger | None) -> None:
        """Score ``domain`` with ``challenger`` beside the champion from the next batch on (as
        a shadow or a canary, ``stream/challenger.py``); None ends the trial."""
        scoring = self.stages.scoring
        if scoring is None:
            return  # an ingest worker handing windows over scores nothing itself
        if challenger is None:
            ended = scoring.challengers.pop(domain, None)
            if ended is not None:
                log.info("%s: trial of %s ended", domain, ended.scorer.version)
            return
        if challenger.mode == "shadow" and self.topics.shadow_scores is None:
            raise ValueError("a shadow challenger needs Topics.shadow_scores")
        scoring.challengers[domain] = challenger
        source = getattr(challenger.scorer, "source", None)
        if challenger.mode == "canary" and source is not None:
            self._alerts.warm({domain: source})  # its alerts are explained by it
        log.info(
            "%s: %s of model %s%s",
            domain,
            challenger.mode,
            challenger.scorer.version,
            f" for {challenger.percent:g}% of customers" if challenger.mode == "canary" else "",
        )

    async def step(self, idle_timeout_s: float = 0.5) -> StepReport:
        self._check()
        m = self.metrics
        records = await self.source.next_batch(idle_timeout_s)
        if self._between_batches is not None:  # reloaded models, between batches only
            for domain, kit in self._between_batches().items():
                self.swap(domain, kit)
        if self._trials_between_batches is not None:
            for domain, challenger in self._trials_between_batches().items():
                self.try_out(domain, challenger)
        self._settle_refusals()
        if not records:
            m.mark_step()
            return StepReport()
        m.events_in.inc(len(records))
        m.batch_size.observe(len(records))
        m.queue_delay_ms.observe(self._clock() * 1000 - min(r.timestamp for r in records))
        records = self._mine(records)
        await self._verify(records)
        records = await self._claim(self._mine(records))
        if not records:
            m.mark_step()
            return StepReport(consumed=0)
        batch = Batch(next(self._serial), records)
        decoded, units = self.stages.decode(records, batch)
        await self.outage.retry("loading customers", partial(_now, self.stages.load, units, set()))
        self.stages.apply(decoded, units, batch, publish=True)
        for name, count in batch.stored.items():
            m.stored.labels(name).inc(count)
        m.count_names(m.coerced_fields, batch.coerced)
        m.count_names(m.unknown_fields, batch.unknown_fields)
        m.count_names(m.unknown_kinds, batch.unknown_kinds)
        if batch.stored.get("redelivered"):
            log.info("%d redelivered events: re-scored, not applied", batch.stored["redelivered"])
        self._publish(batch)
        await self._enqueue(batch)
        m.mark_step()
        fired = sum(len(f) for f in batch.firing)
        return StepReport(len(records), len(batch.dead_letters), len(batch.scores), fired)

    def _mine(self, records: list[Record]) -> list[Record]:
        """The records of partitions this worker may process now (checked once per partition)."""
        partitions = {r.partition for r in records}
        refused, fenced, owns = self._refused, self.ownership.fenced, self.source.owns
        foreign = {p for p in partitions if p in refused or p in fenced or not owns(p)}
        return [r for r in records if r.partition not in foreign] if foreign else records

    def _check(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._completer is None:  # a queue of this event loop (tests run several)
            self._queue = asyncio.Queue(self.max_inflight)
            self._completer = asyncio.create_task(self._complete_all(), name="completer")

    def _publish(self, batch: Batch) -> None:
        """Dead letters and scores (or requests) go out now; the completer awaits them."""
        send = self.sink.send
        if batch.dead_letters:
            send(
                self.topics.dead_letters,
                ((None, d.to_bytes()) for d in batch.dead_letters),
                batch.delivery,
            )
            for letter in batch.dead_letters:
                self.metrics.dead_letters.labels(letter.reason).inc()
                log.warning(
                    "dead letter: %s (%s) at %s/%s",
                    letter.reason,
                    letter.error,
                    letter.partition,
                    letter.offset,
                )
        if batch.requests:
            send(self.topics.score_requests, batch.requests, batch.delivery)
        if batch.scores:
            send(self.topics.scores, batch.scores, batch.delivery)
        if batch.shadow_scores:
            send(self.topics.shadow_scores, batch.shadow_scores, batch.delivery)

    async def _enqueue(self, batch: Batch) -> None:
        for p in batch.writes:
            self._inflight[p] += 1
        self.metrics.in_flight.inc()
        put = asyncio.create_task(self._queue.put(batch))
        done, _ = await asyncio.wait({put, self._completer}, return_when=asyncio.FIRST_COMPLETED)
        if put not in done:
            put.cancel()
            self._check()

    async def drain(self) -> None:
        """Until every batch in flight is published, written and committed."""
        if self._completer is None:
            return
        join = asyncio.create_task(self._queue.join())
        await asyncio.wait({join, self._completer}, return_when=asyncio.FIRST_COMPLETED)
        if not join.done():
            join.cancel()
        self._check()

    async def settle(self) -> None:
        """Complete what is in flight and stop the completer (the next step starts another)."""
        try:
            await self.drain()
        finally:
            if self._completer is not None:
                self._completer.cancel()
                self._completer = None

    async def close(self) -> None:
        """``settle``, then release the explanation thread and the history reader."""
        try:
            await self.settle()
        finally:
            if self._alerts is not None:
                self._alerts.close()
            if self.history is not None:
                await self.history.close()

    # -- rebalances -------------------------------------------------------------------------

    async def revoked(self, partitions: Sequence[int]) -> None:
        """Partitions taken away: complete their batches in flight, then forget their state."""
        await self.drain()
        self._drop(partitions)

    def assigned(self, partitions: Sequence[int]) -> None:
        self.ownership.assigned(partitions)
        self.metrics.assigned.set(len(partitions))
        self.metrics.partitions_owned = len(partitions)

    def _drop(self, partitions: Sequence[int]) -> None:
        for p in partitions:
            self.ownership.release(p)
        for tables in self._tables():
            for table in tables.values():
                table.drop_partitions(list(partitions))

    def _tables(self) -> list[dict]:
        out = []
        if self.stages.events is not None:
            out.append(self.stages.events.windows)
        if self.stages.scoring is not None:
            out.append(self.stages.scoring.alert_states)
        return out

    # -- claims and restores ----------------------------------------------------------------

    async def _verify(self, records: list[Record]) -> None:
        """Did Redis lose the state of a partition in hand since this worker wrote it (restarted
        empty, or lost a tail)? One small read per batch; such a partition is claimed and
        restored again before its records are processed. Batches of it still in flight are
        completed first (their writes are refused; the partition is rewound to them)."""
        owned = {r.partition for r in records} & set(self.ownership.owned())
        if not owned:
            return
        applied = await self.outage.retry(
            "checking state", partial(_now, self.state.applied, self.ownership.topic, sorted(owned))
        )
        lost = self.ownership.lost(applied)
        if not lost:
            return
        log.error(
            "%s: Redis lost the state of partition(s) %s: restoring them from the topic",
            self.ownership.topic,
            lost,
        )
        if any(self._inflight[p] for p in lost):
            await self.drain()
            self._settle_refusals()
        self._drop(lost)

    async def _claim(self, records: list[Record]) -> list[Record]:
        """Claim the partitions seen for the first time (restoring their state first where
        Redis lacks it); the records of partitions that cannot be ours are left out."""
        unclaimed = self.ownership.unclaimed(records)
        if not unclaimed:
            return records
        generation = self.source.generation()
        try:
            for p, first in unclaimed.items():
                plan = await self.outage.retry(
                    "claiming partitions", partial(_now, self.ownership.claim, p, first, generation)
                )
                if plan:
                    await self._restore(plan)
        finally:
            if self.history is not None:
                await self.history.close()
        return self._mine(records)

    async def _restore(
        self, plan: Restore, progress: Callable[[int, int], None] | None = None
    ) -> int:
        """Apply the partition's records [start, end) to the state (nothing published)."""
        p, end = plan.partition, plan.end
        if end == 0 and plan.start is None:  # offset 0 has no past: nothing to read
            return 0
        if self.history is None:  # RISK_SCORING__REBUILD_STATE=0: serve what Redis has
            log.warning("%s/%d: state not restored (rebuild_state is off)", self.ownership.topic, p)
            return 0
        beginning = 0 if end == 0 else await self.history.beginning(self.ownership.topic, p)
        start = beginning if plan.start is None else max(plan.start, beginning)
        if plan.start is not None and plan.start < beginning:
            log.error(
                "%s/%d: offsets %d-%d are gone from the topic: their events are lost to the state",
                self.ownership.topic,
                p,
                plan.start,
                beginning - 1,
            )
        if start >= end:
            return 0
        log.warning(
            "%s/%d: restoring the state from offsets %d-%d%s",
            self.ownership.topic,
            p,
            start,
            end - 1,
            " (Redis had none)" if plan.fresh else "",
        )
        fresh = {p} if plan.fresh else set()
        replayed = 0
        async for chunk in self.history.read(self.ownership.topic, p, start, end):
            batch = Batch(next(self._serial), chunk)
            decoded, units = self.stages.decode(chunk, batch)
            await self.outage.retry(
                "loading customers", partial(_now, self.stages.load, units, fresh)
            )
            self.stages.apply(decoded, units, batch, publish=False)
            writes = list(batch.writes.values())
            refusals = await self.outage.retry("writing state", partial(self._write, writes))
            if refusals:
                self._refused[p] = end
                self.ownership.release(p)
                log.error(
                    "%s/%d: restore refused (%s)", self.ownership.topic, p, refusals[0].reason
                )
                return replayed
            for w in writes:
                self.ownership.written(w.partition, batch.incarnations[w.partition], w.new)
            replayed += len(chunk)
            self.metrics.rebuilt.inc(len(chunk))
            self.durable_serial = batch.serial
            if progress is not None:
                progress(chunk[-1].offset + 1 - start, end - start)
        log.warning("%s/%d: state restored from %d records", self.ownership.topic, p, replayed)
        return replayed

    async def rebuild(
        self, partition: int, end: int, progress: Callable[[int, int], None] | None = None
    ) -> int:
        """Bring ``partition``'s state in Redis up to offset ``end`` from the topic
        (``crmrisk state rebuild``; no worker may serve the partition meanwhile)."""
        self._drop([partition])
        plan = self.ownership.claim(partition, end, generation=None)
        try:
            return await self._restore(plan, progress) if plan else 0
        finally:
            self._drop([partition])

    # -- the completer ----------------------------------------------------------------------

    async def _complete_all(self) -> None:
        while True:
            group = [await self._queue.get()]
            while not self._queue.empty():  # whatever else waits: one write, one commit
                group.append(self._queue.get_nowait())
            try:
                await self._complete(group)
            except BaseException as exc:
                self._failure = exc
                raise
            finally:
                for batch in group:
                    for p in batch.writes:
                        self._inflight[p] -= 1
                    self.metrics.in_flight.dec()
                    self._queue.task_done()

    async def _complete(self, group: list[Batch]) -> None:
        """Steps 1-4 for consecutive batches at once: their acknowledgements, their alerts
        (one explanation pass), one fenced write of the state the last of them left, one
        commit (a group commit: what waits while one write runs is written by the next)."""
        retry = self.outage.retry
        for batch in group:
            await retry("publishing", partial(self._delivered, batch.delivery))
        alerts: list[RiskAlert] = []
        firing = [f for batch in group for f in batch.firing]
        if firing:
            alerts = await self._alerts.alerts(firing)
            delivery = Delivery()
            self.sink.send(self.topics.alerts, ((a.key, a.to_bytes()) for a in alerts), delivery)
            await retry("publishing alerts", partial(self._delivered, delivery))
        writes, firsts, incarnations = self._merged(group)
        refusals = await retry("writing state", partial(self._write, writes))
        refused = {r.partition for r in refusals}
        for r in refusals:
            self._refuse(r.partition, r.reason, firsts[r.partition])
        offsets = {w.partition: w.new for w in writes if w.partition not in refused}
        for p, new in offsets.items():
            self._losses.pop(p, None)
            self.ownership.written(p, incarnations[p], new)
        if offsets:
            await retry("committing offsets", partial(self.source.commit, offsets))
        for batch in group:
            self._observe(batch)
        self._observe_alerts(alerts)
        before, self.durable_serial = self.durable_serial, group[-1].serial
        if before // 64 != self.durable_serial // 64:
            for tables in self._tables():
                for table in tables.values():
                    table.evict(self.max_customers, self.durable_serial)
        try:
            self.metrics.lag.set(await self.source.lag())
        except Exception as exc:  # lag is a gauge: never worth failing a batch over
            log.debug("consumer lag unavailable: %s", exc)

    def _merged(self, group: list[Batch]) -> tuple[list, dict[int, int], dict[int, int]]:
        """One write per partition for consecutive batches: the fence from the first one's
        expected offset to the last one's new offset, each customer's state as the last of
        them left it. Batches of a partition's stale incarnation (refused since) are left out.
        Also each partition's first offset (to rewind to) and incarnation."""
        merged: dict[int, PartitionWrite] = {}
        firsts: dict[int, int] = {}
        incarnations: dict[int, int] = {}
        latest: dict[int, dict] = {}
        for batch in group:
            for p, w in batch.writes.items():
                if not self.ownership.current(p, batch.incarnations[p]):
                    continue
                if p not in merged:
                    merged[p] = PartitionWrite(p, w.epoch, w.expected, w.new)
                    firsts[p], incarnations[p] = batch.first_offsets[p], batch.incarnations[p]
                    latest[p] = {}
                merged[p].new = w.new
                for name in ("windows", "alerts", "scores"):
                    for domain, customer, value in getattr(w, name):
                        latest[p][(name, domain, customer)] = value
        for p, write in merged.items():
            for (name, domain, customer), value in latest[p].items():
                getattr(write, name).append((domain, customer, value))
        return list(merged.values()), firsts, incarnations

    async def _delivered(self, delivery: Delivery) -> None:
        try:
            await self.sink.delivered(delivery)
        except DeliveryFailed:
            self.sink.resend(delivery)
            raise

    async def _write(self, writes: list) -> list:
        if not writes:
            return []
        return await asyncio.to_thread(self.state.write, self.ownership.topic, writes)

    def _refuse(self, partition: int, reason: str, first: int) -> None:
        """A write refused: later batches of the partition are void; the loop settles it."""
        self.ownership.release(partition)
        if reason == "fenced":
            log.warning(
                "%s/%d: a newer owner claimed the partition (this worker was paused "
                "past its session?): leaving it",
                self.ownership.topic,
                partition,
            )
            self.ownership.fenced.add(partition)
            self._refused[partition] = None
            return
        self._losses[partition] += 1
        if self._losses[partition] > _MAX_LOSSES:  # e.g. an eviction policy: say so
            raise RuntimeError(
                f"Redis lost the state of {self.ownership.topic}/{partition} "
                f"{self._losses[partition]} times in a row: check its maxmemory policy (must be "
                "noeviction) and persistence"
            )
        log.error(
            "%s/%d: Redis lost the partition's state while a batch was in hand: "
            "rebuilding it, then redoing the batch",
            self.ownership.topic,
            partition,
        )
        self._refused[partition] = first

    def _settle_refusals(self) -> None:
        """In the loop, between fetches: forget refused partitions' state and rewind lost ones
        to their first uncommitted record (records fetched before are left out)."""
        if not self._refused:
            return
        refused, self._refused = self._refused, {}
        self._drop(list(refused))
        for p, offset in refused.items():
            if offset is not None and self.source.owns(p):
                self.source.rewind(p, offset)

    def _observe(self, batch: Batch) -> None:
        m = self.metrics
        if batch.produced_ms and batch.delivery.acked_at is not None:
            produced = np.concatenate(batch.produced_ms)
            m.observe_latency(batch.delivery.acked_at * 1000 - produced)
        for domain, count in batch.scored_per_domain.items():
            m.scores.labels(domain).inc(count)
        for ms in batch.model_ms:
            m.model_ms.observe(ms)
        for (domain, mode), rows in batch.challenger_rows.items():
            m.challenger_rows.labels(domain, mode).inc(rows)
        for (domain, mode), rows in batch.challenger_failures.items():
            m.challenger_failures.labels(domain, mode).inc(rows)
        for ms in batch.challenger_ms:
            m.challenger_ms.observe(ms)

    def _observe_alerts(self, alerts: list[RiskAlert]) -> None:
        m = self.metrics
        for alert in alerts:
            m.alerts.labels(alert.domain).inc()
            if self._on_alert is not None:
                self._on_alert(alert)


async def _now(function: Callable, *args: object):
    """A synchronous call as an awaitable, for ``Outage.retry``."""
    return function(*args)
