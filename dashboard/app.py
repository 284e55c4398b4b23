"""The dashboard's web app: one page, a JSON API and a server-sent event stream (Starlette).

``Dashboard`` holds the system's read side: Kafka consumers of the alerts, scores, outcomes and
shadow scores topics (from the newest offset, as a live view), the Redis stores (windows, latest
scores, the model pointer and its history), the model registry (held-out metrics, promotion
decisions) and a worker's Prometheus series. The training window's score distribution, which
drift (PSI) is measured against, is computed once per live model version in a thread: the live
model scores a sample of its training customers. The performance panels (estimated vs realized
AUC, calibration, champion vs challenger; ``dashboard/performance.py``) are recomputed in a
thread at most every ``performance_every_s`` seconds, and only for a domain with news.

Routes: ``/`` the page (its scripts under ``/static/``); ``/api/summary``;
``/api/customer/{domain}/{customer}``; ``/stream`` (SSE: ``alert`` events as they arrive, a
``summary`` every second); ``/metrics`` (the performance series, Prometheus text format). Given
an access token, every route answers 401 without it (``stream/access.py``: bearer, or a
browser's basic-auth password, which the browser then resends with the page's own requests and
its event stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import redis
from prometheus_client import CONTENT_TYPE_LATEST
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from dashboard.live import LiveView, histogram_of
from dashboard.metrics import summarise
from dashboard.performance import PerformanceView
from dashboard.performance_metrics import PerformanceMetrics
from lifecycle import ModelPointer
from lifecycle.registry import ModelRegistry, RegistryError
from state import CustomerSequenceStore, LatestScoreStore
from stream.access import CHALLENGE, authorized
from stream.events import Outcome, RiskAlert, RiskScore, ShadowScore

__all__ = ["Dashboard", "DashboardConfig", "build_app"]

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"


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
        self._references: dict[tuple[str, str], np.ndarray | None] = {}
        self._kits: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
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
        from stream.kafka_io import new_consumer

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
        reference = self._reference(domain, version)
        if reference is not None:
            from training.drift import Reference

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

    def _reference(self, domain: str, version: str) -> np.ndarray | None:
        """The training window's scores (None until computed; computed once, in a thread)."""
        key = (domain, version)
        with self._lock:
            if key in self._references:
                return self._references[key]
            self._references[key] = None
        threading.Thread(target=self._compute_reference, args=key, daemon=True).start()
        return None

    def _compute_reference(self, domain: str, version: str) -> None:
        try:
            from training.datasets import load_domain, to_arrays

            kit = self._kit(domain, version)
            c = self.config
            dataset = load_domain(domain, c.data_dir, c.seed)
            records = list(dataset.train)[: c.reference_customers]
            arrays = to_arrays(records, kit.encoder, c.window)
            probability, _, _ = kit.scorer.forward(arrays.events, arrays.mask, arrays.profile)
            with self._lock:
                self._references[(domain, version)] = probability.astype(np.float64)
        except Exception:  # the panel shows no reference; the page stays up
            log.exception("dashboard: no training reference for %s %s", domain, version)

    def _kit(self, domain: str, version: str):
        import torch

        from stream.models import load_domain_model

        key = (domain, version)
        if key not in self._kits:
            try:
                path = self.registry.get(domain, version).path
            except RegistryError:
                if domain not in self.config.checkpoints:
                    raise
                path = self.config.checkpoints[domain]  # e.g. the checkpoint a demo serves
            kit = load_domain_model(path, domain, torch.device("cpu"), 3, 5, 16)
            if kit.version != version:
                raise RegistryError(f"{domain} model {version} is neither registered nor served")
            self._kits[key] = kit
        return self._kits[key]

    def customer(self, domain: str, customer: str) -> dict[str, Any] | None:
        """A customer's recent events (decoded), score history and reasons."""
        window = self.windows.read(customer, domain)
        raw = self.latest.read(customer, domain)
        if raw is None and not len(window):
            return None
        latest = RiskScore.model_validate_json(raw) if raw is not None else None
        alert = self.live.latest_alert(domain, customer)
        out: dict[str, Any] = {
            "customer_id": customer,
            "domain": domain,
            "latest": None if latest is None else json.loads(latest.model_dump_json()),
            "history": self.live.score_history(domain, customer),
            "events": [],
            "reasons": [],
            "sentence": None,
        }
        version = latest.model_version if latest is not None else self._live_version(domain)
        kit = None
        with contextlib.suppress(RegistryError, TypeError):
            kit = self._kit(domain, version) if version else None
        out["events"] = _decoded_events(window, kit)
        if alert is not None:
            out["reasons"] = [json.loads(c.model_dump_json()) for c in alert.reasons]
            out["sentence"] = alert.reason
            out["reasons_from"] = f"alert {alert.alert_id}"
        elif latest is not None and kit is not None and len(window):
            from stream.reasons import reason_codes, reason_sentence
            from stream.requests import ScoreRequest
            from stream.scorer import Scored

            request = ScoreRequest(customer, domain, latest.event_id, 0, 0, window)
            scored = Scored(request, latest.probability, None, [], version)
            (explanation,) = kit.scorer.explain([scored])
            codes = reason_codes(explanation, window)
            out["reasons"] = [json.loads(c.model_dump_json()) for c in codes]
            out["sentence"] = reason_sentence(
                codes, latest.probability, explanation.baseline_probability
            )
            out["reasons_from"] = f"computed now by model {version}"
        return out

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


def _decoded_events(window, kit) -> list[dict[str, Any]]:
    """The window's events, newest first, with their fields decoded from the stored vectors."""
    layout = None if kit is None or kit.scorer.explainer is None else kit.scorer.explainer.layout
    out = []
    for t in range(len(window) - 1, -1, -1):
        fields = {}
        if layout is not None:
            vector = window.events[t]
            fields = {f: layout.decode_event(vector, i) for i, f in enumerate(layout.event_fields)}
        out.append(
            {
                "event_id": window.event_ids[t],
                "kind": window.kinds[t],
                "event_time_ms": int(window.event_times_ms[t]),
                "fields": fields,
            }
        )
    return out


class _TokenGate:
    """ASGI middleware: 401 (with a basic-auth challenge) for a request without the token."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
            if not authorized(header, self.token):
                refused = PlainTextResponse(
                    "unauthorized\n", 401, headers={"WWW-Authenticate": CHALLENGE}
                )
                await refused(scope, receive, send)
                return
        await self.app(scope, receive, send)


def build_app(
    dashboard: Dashboard, domains: Sequence[str] = (), token: str | None = None
) -> Starlette:
    """The dashboard's routes; with a ``token``, only requests that carry it get an answer."""

    async def index(request: Request):
        return FileResponse(STATIC / "index.html")

    async def summary(request: Request):
        return JSONResponse(await asyncio.to_thread(dashboard.summary))

    async def customer(request: Request):
        domain, cid = request.path_params["domain"], request.path_params["customer"]
        found = await asyncio.to_thread(dashboard.customer, domain, cid)
        if found is None:
            return JSONResponse({"error": f"no {domain} customer {cid!r}"}, status_code=404)
        return JSONResponse(found)

    async def stream(request: Request):
        return EventSourceResponse(dashboard.events(request))

    async def metrics(request: Request):
        await asyncio.to_thread(dashboard.performance_reports)  # gauges as fresh as the page
        return Response(dashboard.performance_metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await dashboard.start()
        try:
            yield
        finally:
            await dashboard.stop()

    return Starlette(
        routes=[
            Route("/", index),
            Route("/api/summary", summary),
            Route("/api/customer/{domain}/{customer}", customer),
            Route("/stream", stream),
            Route("/metrics", metrics),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        middleware=[Middleware(_TokenGate, token=token)] if token is not None else [],
        lifespan=lifespan,
    )
