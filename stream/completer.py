"""The completer: what follows a published batch, one batch after another and in order.

While the loop (``stream/pipeline.py``) goes on with the next batches, the completer:

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
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from functools import partial

import numpy as np

from crmrisk.state import PartitionWrite
from crmrisk.stream.alerting import AlertStage
from crmrisk.stream.batch import Batch
from crmrisk.stream.events import RiskAlert
from crmrisk.stream.kafka_producer import DeliveryFailed
from crmrisk.stream.metrics import WorkerMetrics
from crmrisk.stream.outage import Outage
from crmrisk.stream.ownership import Ownership
from crmrisk.stream.ports import Delivery, RecordSource, Sink, StateCopy, Topics

__all__ = ["Completer"]

log = logging.getLogger(__name__)

_MAX_LOSSES = 3  # Redis lost a partition's state this often in a row: something is wrong


class Completer:
    """The completer half of ``Pipeline`` (a base class): the queue of batches in flight, their
    acknowledgements, alerts, state writes and commits, and the partitions refused meanwhile.
    The pipeline provides the ports below and ``_drop``/``_tables`` (its per-partition state)."""

    source: RecordSource
    sink: Sink
    state: StateCopy
    ownership: Ownership
    topics: Topics
    metrics: WorkerMetrics
    outage: Outage
    max_customers: int
    _alerts: AlertStage | None
    _on_alert: Callable[[RiskAlert], None] | None

    def _init_completer(self, max_inflight: int) -> None:
        self.max_inflight = max_inflight
        self._queue: asyncio.Queue[Batch] = asyncio.Queue(max_inflight)
        self._completer: asyncio.Task | None = None
        self._failure: BaseException | None = None
        self._refused: dict[int, int | None] = {}  # partition -> rewind to (None: fenced)
        self._losses: dict[int, int] = defaultdict(int)
        self._inflight: dict[int, int] = defaultdict(int)  # batches in flight per partition
        self.durable_serial = 0  # batches up to it are written and committed

    def _check(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._completer is None:  # a queue of this event loop (tests run several)
            self._queue = asyncio.Queue(self.max_inflight)
            self._completer = asyncio.create_task(self._complete_all(), name="completer")

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
