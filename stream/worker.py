"""The scoring loops: the only place where polling, state, the model and committing meet.

``EventsLoop`` consumes ``crm.events``; ``InferenceLoop`` consumes score requests when the two
run apart. Each step, in order (offsets are committed only once everything before is durable):

1. ``getmany`` a dynamic batch (up to ``max_batch_size`` messages or ``max_delay_ms``);
2. validate, encode and append it to Redis in one pipeline (``Ingestor``), bad input to the DLQ;
3. hand the score requests on: score them here (``Inference``, inline) or produce them to the
   score-requests topic;
4. flush the producer: DLQ records, scores, alerts (or requests) are acknowledged by Kafka;
5. commit the batch's offsets.

A crash anywhere before step 5 replays the batch: appends are refused by the offset guard (state
is exactly-once), the requests are re-scored and re-published (scores and alerts at-least-once).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer

from state import LatestScoreStore
from stream.alerting import Alerter
from stream.batching import DynamicBatcher
from stream.ingest import Ingestor
from stream.kafka_io import BatchProducer, commit_batch, consumer_lag, getmany_source
from stream.metrics import WorkerMetrics
from stream.requests import ScoreRequest
from stream.score_encoding import iso_ms, score_bytes
from stream.scorer import Scored, Scorer

__all__ = [
    "EventsLoop",
    "Inference",
    "InferenceLoop",
    "StepReport",
    "produce_requests",
    "run_until",
]

log = logging.getLogger(__name__)


@dataclass
class StepReport:
    consumed: int = 0
    dead_letters: int = 0
    scores: int = 0
    alerts: int = 0


class Inference:
    """Requests -> one forward pass per domain -> scores and alerts produced, latest in Redis.

    ``run`` flushes the producer before writing the latest scores and alert states, so Redis
    never claims a score or an alert that Kafka does not hold.
    """

    def __init__(
        self,
        producer: BatchProducer,
        scorers: Mapping[str, Scorer],
        alerter: Alerter,
        latest: LatestScoreStore,
        scores_topic: str,
        alerts_topic: str,
        metrics: WorkerMetrics,
        on_alert: Callable[[object], None] | None = None,
    ) -> None:
        self._producer = producer
        self.scorers = dict(scorers)
        self._alerter = alerter
        self._latest = latest
        self._scores_topic = scores_topic
        self._alerts_topic = alerts_topic
        self._metrics = metrics
        self._on_alert = on_alert

    def swap(self, domain: str, scorer: Scorer) -> None:
        """Score ``domain`` with ``scorer`` from the next batch on (call between batches)."""
        self.scorers[domain] = scorer

    async def run(self, requests: Sequence[ScoreRequest]) -> tuple[int, int]:
        """Score, publish and remember; returns (scores, alerts)."""
        if not requests:
            return 0, 0
        by_domain: dict[str, list[ScoreRequest]] = defaultdict(list)
        for request in requests:
            by_domain[request.domain].append(request)
        scored: list[Scored] = []
        for domain, group in by_domain.items():
            started = time.perf_counter()
            scored.extend(self.scorers[domain].score(group))
            self._metrics.model_ms.observe((time.perf_counter() - started) * 1000)
        now = iso_ms(int(time.time() * 1000))
        latest = [(s.request.customer_id, s.request.domain, self._score(s, now)) for s in scored]
        await self._producer.send_many(
            self._scores_topic, ((c.encode(), payload) for c, _, payload in latest)
        )
        versions = {d: self.scorers[d].version for d in by_domain}
        alerts, pending = self._alerter.alerts_for(scored, versions)
        await self._producer.send_many(self._alerts_topic, ((a.key, a.to_bytes()) for a in alerts))
        await self._producer.flush()
        if self._on_alert is not None:
            for alert in alerts:
                self._on_alert(alert)
        done_ms = time.time() * 1000
        for s in scored:
            latency_ms = done_ms - s.request.produced_ms
            self._metrics.latency_ms.observe(latency_ms)
            self._metrics.recent_latency_ms.append(latency_ms)
        for domain, group in by_domain.items():
            self._metrics.scores.labels(domain).inc(len(group))
        for alert in alerts:
            self._metrics.alerts.labels(alert.domain).inc()
        self._latest.write_many(latest)
        self._alerter.save(pending)
        return len(scored), len(alerts)

    def _score(self, s: Scored, now: str) -> bytes:
        request = s.request
        return score_bytes(
            customer_id=request.customer_id,
            domain=request.domain,
            event_id=request.event_id,
            event_time_ms=request.event_time_ms,
            probability=s.probability,
            quantiles=s.quantiles,
            model_version=self.scorers[request.domain].version,
            scored_at=now,
            top_events=s.top_events,
        )


class EventsLoop:
    """Consumes inbound events; hands requests to ``handoff`` (inline inference or a topic)."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        producer: BatchProducer,
        ingestor: Ingestor,
        handoff: Callable[[Sequence[ScoreRequest]], Awaitable[tuple[int, int]]],
        dead_letter_topic: str,
        metrics: WorkerMetrics,
        max_batch_size: int,
        max_delay_ms: float,
        between_batches: Callable[[], None] | None = None,
    ) -> None:
        self._consumer = consumer
        self._producer = producer
        self._between_batches = between_batches
        self._ingestor = ingestor
        self._handoff = handoff
        self._dlq = dead_letter_topic
        self._metrics = metrics
        self._batcher = DynamicBatcher(getmany_source(consumer), max_batch_size, max_delay_ms)

    async def step(self, idle_timeout_s: float = 0.5) -> StepReport:
        m = self._metrics
        if self._between_batches is not None:
            self._between_batches()  # e.g. swap in a reloaded model: never inside a batch
        records = await self._batcher.next_batch(idle_timeout_s)  # Step 1
        if not records:
            m.mark_step()
            return StepReport()
        m.events_in.inc(len(records))
        m.batch_size.observe(len(records))
        m.queue_delay_ms.observe(time.time() * 1000 - min(r.timestamp for r in records))
        result = self._ingestor.ingest(records)  # Step 2
        await self._producer.send_many(
            self._dlq, ((None, letter.to_bytes()) for letter in result.dead_letters)
        )
        for letter in result.dead_letters:
            m.dead_letters.labels(letter.reason).inc()
            log.warning(
                "dead letter: %s (%s) at %s/%s",
                letter.reason,
                letter.error,
                letter.partition,
                letter.offset,
            )
        for status in ("applied", "duplicates", "redelivered", "outside_window", "unscored"):
            m.stored.labels(status).inc(getattr(result, status))
        if result.redelivered:
            log.info(
                "%d redelivered events already stored (offset guard): re-scoring them",
                result.redelivered,
            )
        scores, alerts = await self._handoff(result.requests)  # Step 3
        await self._producer.flush()  # Step 4
        await commit_batch(self._consumer, records)  # Step 5
        m.lag.set(await consumer_lag(self._consumer))
        m.mark_step()
        return StepReport(len(records), len(result.dead_letters), scores, alerts)


class InferenceLoop:
    """Consumes score requests produced by ``EventsLoop`` with a topic handoff."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        inference: Inference,
        metrics: WorkerMetrics,
        max_batch_size: int,
        max_delay_ms: float,
        between_batches: Callable[[], None] | None = None,
    ) -> None:
        self._consumer = consumer
        self._inference = inference
        self._between_batches = between_batches
        self._metrics = metrics
        self._batcher = DynamicBatcher(getmany_source(consumer), max_batch_size, max_delay_ms)

    async def step(self, idle_timeout_s: float = 0.5) -> StepReport:
        m = self._metrics
        if self._between_batches is not None:
            self._between_batches()
        records = await self._batcher.next_batch(idle_timeout_s)
        if not records:
            m.mark_step()
            return StepReport()
        m.batch_size.observe(len(records))
        requests = [ScoreRequest.from_bytes(r.value) for r in records]
        scores, alerts = await self._inference.run(requests)
        await commit_batch(self._consumer, records)
        m.lag.set(await consumer_lag(self._consumer))
        m.mark_step()
        return StepReport(consumed=len(records), scores=scores, alerts=alerts)


def produce_requests(
    producer: BatchProducer, topic: str
) -> Callable[[Sequence[ScoreRequest]], Awaitable[tuple[int, int]]]:
    """The topic handoff: each request, window included, keyed by customer id."""

    async def handoff(requests: Sequence[ScoreRequest]) -> tuple[int, int]:
        await producer.send_many(topic, ((r.customer_id.encode(), r.to_bytes()) for r in requests))
        return 0, 0

    return handoff


async def run_until(step: Callable[[], Awaitable[StepReport]], stop: asyncio.Event) -> None:
    """Step until ``stop`` is set; an exception propagates (restart from committed offsets)."""
    while not stop.is_set():
        await step()
