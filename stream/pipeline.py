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

Outages (``stream/outage.py``): a step that fails because Redis or the broker is unreachable is
retried in place, with backoff, the batch kept in hand and nothing committed; ``health`` says
so meanwhile. Lost state (``stream/rebuild.py``): before step 2 the partitions of the batch are
checked for their state marks and rebuilt from the topic when Redis lost them; the marks are
checked again after step 7, and if Redis lost state while the batch was in hand, the batch is
done again from step 2 on whole histories before its offsets are committed.

The pipeline talks to ports only (``stream/ports.py``): ``stream/app.py`` wires Kafka and Redis
in, the fast tests wire lists and the in-memory stores.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

from state import AlertState
from stream.alerting import Alerter
from stream.events import InvalidEvent, dead_letter
from stream.intake import EventIntake, Intake, RequestIntake
from stream.metrics import WorkerMetrics
from stream.outage import Outage
from stream.ports import AlertStore, RecordSource, ScoreStore, Sink
from stream.rebuild import StateRebuilder
from stream.requests import ScoreRequest
from stream.score_encoding import iso_ms, score_bytes
from stream.scorer import Scored, Scorer

__all__ = ["Pipeline", "Scoring", "StepReport", "Topics"]

log = logging.getLogger(__name__)

_MAX_REDOS = 3
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
        outage: Outage | None = None,
        rebuilder: StateRebuilder | None = None,
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
        self.outage = outage or Outage(metrics.outage_retries)
        self.rebuilder = rebuilder

    def health(self) -> str | None:
        """None unless the worker is riding out an outage (for ``/health``)."""
        return self.outage.health()

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
        retry, redone = self.outage.retry, 0
        while True:
            if self.rebuilder is not None:
                await retry("checking state marks", partial(self.rebuilder.ensure, records))
            intake = await retry("storing events", partial(self._now, self.intake.take, records))
            for status in _STORED:
                m.stored.labels(status).inc(getattr(intake, status))
            if intake.redelivered:
                log.info(
                    "%d redelivered events already stored: re-scoring them", intake.redelivered
                )
            scores: list[tuple[str, str, bytes]] = []
            alerts: list = []
            changed: list[tuple[str, str, AlertState]] = []
            if self.scoring is not None:
                scored = self._score(intake)  # 3.
                scores, alerts, changed = await retry(  # 4.
                    "reading alert states", partial(self._now, self._messages, scored)
                )
            await retry("publishing", self._publisher(intake, scores, alerts))  # 5. 6.
            if self.scoring is not None:  # 7.
                await retry("writing state", partial(self._now, self._write, scores, changed))
            if self.rebuilder is None or not await retry(
                "checking state marks", partial(self._now, self.rebuilder.unmarked, records)
            ):
                break
            redone += 1
            if redone > _MAX_REDOS:  # e.g. an eviction policy dropping the marks: say so
                raise RuntimeError(
                    f"Redis lost state {redone} times during one batch: check its maxmemory "
                    "policy (must be noeviction) and persistence"
                )
            log.error("Redis lost state while a batch was in hand: rebuilding, then redoing it")
        if self.scoring is not None:
            self._observe(intake.requests, alerts)
        await retry("committing offsets", partial(self.source.commit, records))  # 8.
        try:
            m.lag.set(await self.source.lag())
        except Exception as exc:  # lag is a gauge: never worth failing a batch over
            log.debug("consumer lag unavailable: %s", exc)
        m.mark_step()
        return StepReport(len(records), len(intake.dead_letters), len(scores), len(alerts))

    def restore(self, records: Sequence) -> int:
        """Apply past ``records`` to the state only (a rebuild): windows, alert states and
        latest scores as a replay leaves them; nothing is produced or committed."""
        intake = self.intake.take(records, guard=False)
        if intake.dead_letters:  # dead-lettered when they first arrived: not again
            log.debug("rebuild skipped %d records that were dead letters", len(intake.dead_letters))
        self.metrics.rebuilt.inc(len(records))
        if self.scoring is None or not isinstance(self.intake, EventIntake):
            return len(records)
        scores, _, changed = self._messages(self._score(intake), explain=False)
        self._write(scores, changed)
        return len(records)

    @staticmethod
    async def _now(function: Callable, *args: object):
        """A store call as an awaitable, for ``Outage.retry`` (the stores are synchronous)."""
        return function(*args)

    def _publisher(self, intake: Intake, scores: list, alerts: list) -> Callable:
        """Steps 5-6 as one retryable attempt: send once, flush until acknowledged, and send
        again only if the producer says messages were lost (a timed-out flush keeps them)."""
        pending = {"send": True}

        async def publish() -> None:
            if pending["send"]:
                pending["send"] = False
                await self._send(intake, scores, alerts)
            try:
                await self.sink.flush()
            except TimeoutError:
                raise
            except Exception:
                pending["send"] = True
                raise

        return publish

    async def _send(self, intake: Intake, scores: list, alerts: list) -> None:
        if self.scoring is None:  # 3. the topic handoff: an inference worker scores them
            await self.sink.send_many(
                self.topics.score_requests,
                ((r.customer_id.encode(), r.to_bytes()) for r in intake.requests),
            )
        await self._dead_letters(intake)
        await self.sink.send_many(self.topics.scores, ((c.encode(), b) for c, _, b in scores))
        await self.sink.send_many(self.topics.alerts, ((a.key, a.to_bytes()) for a in alerts))

    def _write(self, scores: list, changed: list) -> None:
        assert self.scoring is not None
        self.scoring.latest_scores.write_many(scores)
        self.scoring.alert_states.write_many(changed)

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
            try:
                done = scorer.score(usable)
            except Exception:  # one bad window must not fail the batch: find it
                log.exception(
                    "%s: scoring a batch of %d failed; scoring one by one", domain, len(usable)
                )
                done, usable = self._score_each(intake, scorer, usable)
            self.metrics.model_ms.observe((time.perf_counter() - started) * 1000)
            scored.extend(done)
            kept.extend(usable)
        intake.requests = kept
        return scored

    def _score_each(
        self, intake: Intake, scorer: Scorer, requests: Sequence[ScoreRequest]
    ) -> tuple[list[Scored], list[ScoreRequest]]:
        """Score one by one; whatever still fails becomes a ``scoring_failed`` dead letter."""
        scored, kept = [], []
        for request in requests:
            try:
                scored.extend(scorer.score([request]))
            except Exception as exc:
                error = InvalidEvent("scoring_failed", f"{type(exc).__name__}: {exc}")
                intake.dead_letters.append(
                    dead_letter(
                        request.to_bytes(), error, "score-request", key=request.customer_id.encode()
                    )
                )
                continue
            kept.append(request)
        return scored, kept

    def _messages(
        self, scored: Sequence[Scored], explain: bool = True
    ) -> tuple[list[tuple[str, str, bytes]], list, list[tuple[str, str, AlertState]]]:
        """Score bytes (serialised once: produced, then stored as the latest), alerts, states;
        ``explain=False`` (a rebuild: its alerts are never published) skips the reason codes."""
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
        scorers = self.scoring.scorers if explain else None
        alerts, changed = self.scoring.alerter.alerts_for(scored, states, scorers)
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
