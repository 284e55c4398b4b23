"""The scoring pipeline: the one place where polling, state, the model and committing meet.

``Pipeline.step`` runs the delivery steps of one batch, in this order; offsets are committed only
once everything before them is durable:

1. take a dynamic batch of records from the source (up to ``max_batch_size`` or
   ``max_delay_ms``), then swap in a model reloaded meanwhile (checked once the batch is in
   hand, not before the wait for it: a batch is scored by one version, the newest ready when
   its records arrived);
2. intake: validate, encode and append the events to the sequence store in one call (or decode
   score requests from an ingest worker); whatever cannot be used becomes a dead letter;
3. score: one forward pass per domain (or, with the topic handoff, pass the requests on);
4. build the score messages and decide the alerts from the customers' alert states;
5. produce dead letters, scores and alerts (or requests);
6. flush: Kafka has acknowledged every message of the batch;
7. write the latest scores and the changed alert states (Redis never claims what Kafka lacks);
8. commit the batch's offsets.

A crash anywhere before step 8 replays the batch: appends are refused by the offset guard (state
is exactly-once), the requests are re-scored and re-published (scores and alerts at-least-once,
an alert with the same ``alert_id``).

The pipeline talks to ports only (``stream/ports.py``): ``stream/app.py`` wires Kafka and Redis
in, the fast tests wire lists and the in-memory stores.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from state import AlertState
from stream.alerting import Alerter
from stream.events import InvalidEvent, dead_letter
from stream.intake import EventIntake, Intake, RequestIntake
from stream.metrics import WorkerMetrics
from stream.ports import AlertStore, RecordSource, ScoreStore, Sink
from stream.requests import ScoreRequest
from stream.score_encoding import iso_ms, score_bytes
from stream.scorer import Scored, Scorer

__all__ = ["Pipeline", "Scoring", "StepReport", "Topics"]

log = logging.getLogger(__name__)

_STORED = ("applied", "duplicates", "redelivered", "outside_window", "unscored")


@dataclass
class StepReport:
    consumed: int = 0
    dead_letters: int = 0
    scores: int = 0
    alerts: int = 0


@dataclass(frozen=True)
class Topics:
    """Where the pipeline produces: dead letters, scores, alerts; requests for the handoff."""

    dead_letters: str
    scores: str
    alerts: str
    score_requests: str | None = None


@dataclass
class Scoring:
    """What step 3-4 need: a scorer per domain, the alert policy, the stores written at step 7."""

    scorers: dict[str, Scorer]
    alerter: Alerter
    alert_states: AlertStore
    latest_scores: ScoreStore


class Pipeline:
    """One worker's loop body; ``scoring=None`` passes the requests on (the topic handoff)."""

    def __init__(
        self,
        source: RecordSource,
        intake: EventIntake | RequestIntake,
        sink: Sink,
        topics: Topics,
        metrics: WorkerMetrics,
        scoring: Scoring | None = None,
        *,
        between_batches: Callable[[], Mapping[str, object]] | None = None,
        on_alert: Callable[[object], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if scoring is None and topics.score_requests is None:
            raise ValueError("a pipeline without scoring needs a score_requests topic")
        self.source = source
        self.intake = intake
        self.sink = sink
        self.topics = topics
        self.metrics = metrics
        self.scoring = scoring
        self._between_batches = between_batches
        self._on_alert = on_alert
        self._clock = clock

    def swap(self, domain: str, kit: object) -> None:
        """Serve ``domain`` with a reloaded model kit (``stream.models.DomainModel``)."""
        self.intake.swap(domain, kit.encoder)
        if self.scoring is not None:
            self.scoring.scorers[domain] = kit.scorer
        log.info("%s: now scoring with model %s", domain, kit.version)

    async def step(self, idle_timeout_s: float = 0.5) -> StepReport:
        m = self.metrics
        records = await self.source.next_batch(idle_timeout_s)  # 1.
        if self._between_batches is not None:  # reloaded models, between batches only
            for domain, kit in self._between_batches().items():
                self.swap(domain, kit)
        if not records:
            m.mark_step()
            return StepReport()
        m.events_in.inc(len(records))
        m.batch_size.observe(len(records))
        m.queue_delay_ms.observe(self._clock() * 1000 - min(r.timestamp for r in records))
        intake = self.intake.take(records)  # 2.
        for status in _STORED:
            m.stored.labels(status).inc(getattr(intake, status))
        if intake.redelivered:
            log.info("%d redelivered events already stored: re-scoring them", intake.redelivered)
        scores: list[tuple[str, str, bytes]] = []
        alerts: list = []
        changed: list[tuple[str, str, AlertState]] = []
        if self.scoring is None:  # 3. the topic handoff: an inference worker scores them
            await self.sink.send_many(
                self.topics.score_requests,
                ((r.customer_id.encode(), r.to_bytes()) for r in intake.requests),
            )
        else:
            scored = self._score(intake)  # 3.
            scores, alerts, changed = self._messages(scored)  # 4.
        await self._dead_letters(intake)  # 5.
        await self.sink.send_many(self.topics.scores, ((c.encode(), b) for c, _, b in scores))
        await self.sink.send_many(self.topics.alerts, ((a.key, a.to_bytes()) for a in alerts))
        await self.sink.flush()  # 6.
        if self.scoring is not None:  # 7.
            self.scoring.latest_scores.write_many(scores)
            self.scoring.alert_states.write_many(changed)
            self._observe(intake.requests, alerts)
        await self.source.commit(records)  # 8.
        m.lag.set(await self.source.lag())
        m.mark_step()
        return StepReport(len(records), len(intake.dead_letters), len(scores), len(alerts))

    def _score(self, intake: Intake) -> list[Scored]:
        """One forward pass per domain; a request no model here can score is dead-lettered."""
        assert self.scoring is not None
        by_domain: dict[str, list[ScoreRequest]] = defaultdict(list)
        for request in intake.requests:
            by_domain[request.domain].append(request)
        scored: list[Scored] = []
        kept: list[ScoreRequest] = []
        for domain, group in by_domain.items():
            scorer = self.scoring.scorers.get(domain)
            usable = [r for r in group if scorer is not None and scorer.accepts(r)]
            for request in group:
                if scorer is None or not scorer.accepts(request):
                    self._reject_request(intake, request, scorer)
            if not usable:
                continue
            started = time.perf_counter()
            scored.extend(scorer.score(usable))
            self.metrics.model_ms.observe((time.perf_counter() - started) * 1000)
            kept.extend(usable)
        intake.requests = kept
        return scored

    def _messages(
        self, scored: Sequence[Scored]
    ) -> tuple[list[tuple[str, str, bytes]], list, list[tuple[str, str, AlertState]]]:
        """Score bytes (serialised once: produced, then stored as the latest), alerts, states."""
        assert self.scoring is not None
        if not scored:
            return [], [], []
        now = iso_ms(int(self._clock() * 1000))
        scores = [
            (
                s.request.customer_id,
                s.request.domain,
                score_bytes(
                    customer_id=s.request.customer_id,
                    domain=s.request.domain,
                    event_id=s.request.event_id,
                    event_time_ms=s.request.event_time_ms,
                    probability=s.probability,
                    quantiles=s.quantiles,
                    model_version=s.model_version,
                    scored_at=now,
                    top_events=s.top_events,
                ),
            )
            for s in scored
        ]
        keys = list(dict.fromkeys((s.request.customer_id, s.request.domain) for s in scored))
        states = dict(zip(keys, self.scoring.alert_states.read_many(keys), strict=True))
        alerts, changed = self.scoring.alerter.alerts_for(scored, states, self.scoring.scorers)
        return scores, alerts, changed

    async def _dead_letters(self, intake: Intake) -> None:
        m = self.metrics
        await self.sink.send_many(
            self.topics.dead_letters, ((None, d.to_bytes()) for d in intake.dead_letters)
        )
        for letter in intake.dead_letters:
            m.dead_letters.labels(letter.reason).inc()
            log.warning(
                "dead letter: %s (%s) at %s/%s",
                letter.reason,
                letter.error,
                letter.partition,
                letter.offset,
            )

    def _reject_request(self, intake: Intake, request: ScoreRequest, scorer: Scorer | None) -> None:
        """A stored event whose window this worker cannot score: a dead letter, not a crash."""
        if scorer is None:
            error = InvalidEvent("unknown_domain", f"domain: {request.domain!r} has no model here")
        else:
            error = InvalidEvent(
                "incompatible_request",
                f"window of width {request.sequence.events.shape[1:]} does not fit model "
                f"{scorer.version} (event_dim {scorer.event_dim}, profile_dim "
                f"{scorer.profile_dim})",
            )

        intake.dead_letters.append(
            dead_letter(
                request.to_bytes(), error, "score-request", key=request.customer_id.encode()
            )
        )

    def _observe(self, requests: Sequence[ScoreRequest], alerts: Sequence) -> None:
        m = self.metrics
        done_ms = self._clock() * 1000
        per_domain: dict[str, int] = defaultdict(int)
        for request in requests:
            latency_ms = done_ms - request.produced_ms
            m.latency_ms.observe(latency_ms)
            m.recent_latency_ms.append(latency_ms)
            per_domain[request.domain] += 1
        for domain, count in per_domain.items():
            m.scores.labels(domain).inc(count)
        for alert in alerts:
            m.alerts.labels(alert.domain).inc()
            if self._on_alert is not None:
                self._on_alert(alert)
