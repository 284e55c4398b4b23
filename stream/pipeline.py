"""The scoring loop: batches in, scores out at once, alerts and state behind them, commits in order.

``Pipeline.step`` takes one batch and runs its stages in memory (``stream/stages.py``: decode ->
window -> score -> decide -> messages) on the state of the partitions this worker owns, then
publishes its dead letters and scores (or score requests) at once and hands the batch to the
completer, which waits for its acknowledgements, explains and publishes its alerts, writes its
state and commits it, in order, while the loop goes on with the next batches
(``stream/completer.py``).

Partition ownership (``stream/ownership.py``, ``stream/restore.py``): a partition is claimed
before its first records are processed, and restored from the topic (``history``) first when
Redis lost its state or a tail of it. A write refused because a newer owner claimed the
partition stops it here until a new assignment; one refused because Redis lost the state rewinds
the partition to the batch and rebuilds it. A revoked partition's in-flight batches are
completed first, then its state is dropped.

Outages (``stream/outage.py``): a step that fails because Redis or the broker is unreachable is
retried in place, with backoff, nothing committed meanwhile; ``health`` says so.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

from crmrisk.stream.alerting import AlertStage, ThreadAlerts
from crmrisk.stream.batch import Batch
from crmrisk.stream.challenger import Challenger
from crmrisk.stream.completer import Completer
from crmrisk.stream.events import RiskAlert
from crmrisk.stream.metrics import WorkerMetrics
from crmrisk.stream.outage import Outage, as_awaitable
from crmrisk.stream.ports import History, Record, RecordSource, Sink, StateCopy, Topics
from crmrisk.stream.restore import Restorer
from crmrisk.stream.stages import BatchStages

__all__ = ["Pipeline", "StepReport"]

log = logging.getLogger(__name__)


@dataclass
class StepReport:
    consumed: int = 0
    dead_letters: int = 0
    scores: int = 0
    alerts: int = 0  # alerts that fire (published once explained, by the completer)


class Pipeline(Completer, Restorer):
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
        outage: Outage,
        alert_stage: AlertStage | None = None,
        max_inflight: int,
        max_customers: int,
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
        self.outage = outage
        self.max_customers = max_customers
        self._delivery_timeout_s = delivery_timeout_s
        self._clock = clock
        self._serial = itertools.count(1)
        self._init_completer(max_inflight)
        self._alerts: AlertStage | None = alert_stage or (
            ThreadAlerts(stages.scoring.alerter) if stages.scoring is not None else None
        )

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
        await self.outage.retry(
            "loading customers", partial(as_awaitable, self.stages.load, units, set())
        )
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
