"""The dashboard's web app: one page, a JSON API and a server-sent event stream (Starlette).

``Dashboard`` holds the system's read side: Kafka consumers of the alerts, scores, outcomes and
shadow scores topics (from the newest offset, as a live view), the Redis stores (windows, latest
scores, the model pointer and its history), the model registry (held-out metrics, promotion
decisions) and a worker's Prometheus series. The training window's score distribution, which
drift (PSI) is measured against, is computed once per live model version in a thread: the live
model scores a sample of its training customers. The performance panels (estimated vs realized
AUC, calibration, champion vs challenger; ``dashboard/performance.py``) are recomputed in a
thread at most every ``performance_every_s`` seconds, and only for a domain with news.

The routes are in ``dashboard/routes.py``, the customer lookup in ``dashboard/customer_view.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from starlette.requests import Request

from crmrisk.dashboard.customer_view import CustomerView
from crmrisk.dashboard.live import LiveView, histogram_of
from crmrisk.dashboard.metrics import summarise
from crmrisk.dashboard.performance import PerformanceView
from crmrisk.dashboard.performance_metrics import PerformanceMetrics
from crmrisk.lifecycle import ModelPointer
from crmrisk.lifecycle.registry import ModelRegistry, RegistryError
from crmrisk.state import CustomerSequenceStore, LatestScoreStore
from crmrisk.stream.events import Outcome, RiskAlert, RiskScore, ShadowScore
from crmrisk.stream.kafka_consumer import new_consumer
from crmrisk.training.drift import Reference

__all__ = ["Dashboard", "DashboardConfig"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DashboardConfig:
    """Plain values from Settings (only entry points build Settings)."""

    kafka: dict[str, Any]  # client config
    alerts_topic: str
    scores_topic: str
    outcomes_topic: str
    shadow_topic: str
    redis_url: str
    redis_kwargs: dict[str, Any]
    key_prefix: str
    window: int
    ttl_s: int
    pointer_history: int
    models_dir: Path
    data_dir: Path
    seed: int
    domains: tuple[str, ...]
    alert_threshold: float
    performance_chunk_s: float
    performance_chunks: int
    performance_chunk_scores: int
    performance_outcomes: int
    performance_draws: int
    performance_every_s: float
    shadow_scatter: int
    checkpoints: dict[str, Path] = field(default_factory=dict)  # served outside the registry
    reference_customers: int = 3000


class Dashboard:
    """The read side of the running system, shared by the routes."""

    def __init__(self, config: DashboardConfig, metrics: Callable[[], str | None]) -> None:
        self.config = config
        self.live = LiveView()
        self.performance = PerformanceView(
            config.alert_threshold,
            config.performance_chunk_s,
            config.performance_chunks,
            config.performance_chunk_scores,
            config.performance_outcomes,
            config.shadow_scatter,
            config.performance_draws,
        )
        self.performance_metrics = PerformanceMetrics()
        self._reports: dict[str, dict[str, Any]] = {}
        self._reported_at = float("-inf")
        self._report_lock = threading.Lock()  # one recomputation at a time
        self._metrics = metrics
        self._client = redis.Redis.from_url(config.redis_url, **config.redis_kwargs)
        c = config
        self.windows = CustomerSequenceStore(self._client, c.key_prefix)
        self.latest = LatestScoreStore(self._client, c.key_prefix, c.ttl_s)
        self.pointer = ModelPointer(
            self._client, c.key_prefix, c.pointer_history, Path(c.models_dir) / "live"
        )
        self.registry = ModelRegistry(c.models_dir)
        self._subscribers: set[asyncio.Queue] = set()
        self.customers = CustomerView(
            config, self.registry, self.windows, self.latest, self.live, self._live_version
        )
        self._tasks: list[asyncio.Task] = []

    # -- Kafka -> LiveView ---------------------------------------------------------------------

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._follow())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._client.close()

    async def _follow(self) -> None:
        c = self.config
        topics = [c.alerts_topic, c.scores_topic, c.outcomes_topic, c.shadow_topic]
        consumer = new_consumer(c.kafka, topics, None, "crmrisk-dash")
        await consumer.start()
        try:
            await consumer.seek_to_end()
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=5000)
                now = time.time()
                for tp, records in batches.items():
                    for record in records:
                        self._take(tp.topic, record.value, now)
        finally:
            await consumer.stop()

    def _take(self, topic: str, value: bytes, now: float) -> None:
        c = self.config
        try:
            if topic == c.alerts_topic:
                alert = RiskAlert.model_validate_json(value)
                self.live.add_alert(alert)
                payload = alert.model_dump_json()
                for queue in list(self._subscribers):
                    queue.put_nowait(payload)
            elif topic == c.scores_topic:
                score = RiskScore.model_validate_json(value)
                self.live.add_score(score, now)
                self.performance.add_score(score)
            elif topic == c.outcomes_topic:
                self.performance.add_outcome(Outcome.model_validate_json(value))
            else:
                shadow = ShadowScore.model_validate_json(value)
                self.performance.add_shadow(shadow)
                self.performance_metrics.count_shadow(shadow, c.alert_threshold)
        except ValueError as exc:  # a message that breaks the contract: shown in the log only
            log.warning("dashboard: unreadable message on %s: %s", topic, exc)

    # -- what the page shows -------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        now = time.time()
        worker = summarise(self._metrics())
        domains = {d: self._domain(d) for d in self.config.domains}
        return {
            "now": now,
            "events_per_s": round(self.live.events_per_s(now), 1),
            "scores_seen": self.live.scores_seen,
            "alerts_seen": self.live.alerts_seen,
            "latency_ms": worker.get("latency_ms"),
            "consumer_lag": worker.get("consumer_lag"),
            "worker": worker.get("counts", {}),
            "data_quality": worker.get("data_quality", []),
            "top_customers": self.live.top_customers(),
            "domains": domains,
            "performance": self.performance_reports(),
        }

    def performance_reports(self) -> dict[str, dict[str, Any]]:
        """Each shown domain's performance report, recomputed for the domains with news at most
        every ``performance_every_s`` (the estimate's band samples labels: not per request)."""
        with self._report_lock:
            due = time.monotonic() - self._reported_at >= self.config.performance_every_s
            for domain in self.config.domains:
                if domain not in self._reports or (due and domain in self.performance.changed):
                    report = self.performance.report(domain)
                    self._reports[domain] = report
                    self.performance_metrics.update(domain, report)
            if due:
                self._reported_at = time.monotonic()
            return dict(self._reports)

    def _domain(self, domain: str) -> dict[str, Any]:
        version = self._live_version(domain)
        out: dict[str, Any] = {"version": version, "score_now": self.live.histogram(domain)}
        if version is None:
            return out
        try:
            entry = self.registry.get(domain, version)
            test = dict(entry.metrics.get("test") or {})
            out["metrics"] = {k: test[k] for k in ("auc", "pr_auc", "brier", "ece") if k in test}
            out["decision"] = entry.decision or None
            out["created_at"] = entry.created_at
        except RegistryError as exc:
            out["error"] = str(exc)
        out["promotions"] = [
            {
                "version": ch.version,
                "previous": ch.previous,
                "at": ch.changed_at.isoformat(),
                "reason": ch.reason,
            }
            for ch in self.pointer.history(domain, 5)
        ]
        reference = self.customers.reference(domain, version)
        if reference is not None:
            out["score_training"] = histogram_of(reference)
            recent = self.live.recent_scores(domain)
            if recent.size >= 50:
                out["psi"] = round(Reference.fit(reference).psi(recent), 4)
        return out

    def _live_version(self, domain: str) -> str | None:
        current = self.pointer.current(domain)
        if current is not None:
            return current
        # No pointer (a demo serves a given checkpoint): the version on the newest score.
        if domain in self.live.versions:
            return self.live.versions[domain]
        latest = self.registry.latest(domain)
        return None if latest is None else latest.version

    def customer(self, domain: str, customer: str) -> dict[str, Any] | None:
        """A customer's recent events (decoded), score history and reasons."""
        return self.customers.customer(domain, customer)

    # -- server-sent events --------------------------------------------------------------------

    async def events(self, request: Request):
        queue: asyncio.Queue = asyncio.Queue(maxsize=1000)
        self._subscribers.add(queue)
        try:
            yield {"event": "summary", "data": json.dumps(self.summary())}
            for alert in list(self.live.alerts)[:50][::-1]:  # what happened before the page
                yield {"event": "alert", "data": alert.model_dump_json()}
            next_summary = time.monotonic() + 1.0
            while not await request.is_disconnected():
                timeout = max(next_summary - time.monotonic(), 0.0)
                try:
                    payload = await asyncio.wait_for(queue.get(), timeout)
                    yield {"event": "alert", "data": payload}
                except TimeoutError:
                    summary = await asyncio.to_thread(self.summary)
                    yield {"event": "summary", "data": json.dumps(summary)}
                    next_summary = time.monotonic() + 1.0
        finally:
            self._subscribers.discard(queue)
