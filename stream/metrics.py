"""Prometheus metrics of one worker, in its own registry, served with a health endpoint.

``GET /metrics`` is the Prometheus text format; ``GET /health`` answers 200 with JSON while the
worker's loop has completed a step recently and no check reports a problem, 503 otherwise, with
the reasons (e.g. "degraded": the model pointer is unreadable, promotions are not followed).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

import numpy as np
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

from crmrisk.stream.access import CHALLENGE, authorized, check_listen

__all__ = [
    "MAX_NAMES",
    "OTHER",
    "BulkHistogram",
    "Scraped",
    "WorkerMetrics",
    "health_report",
    "serve",
]

_MS_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000)
_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)
MAX_NAMES = 100  # distinct producer-given names per domain and series (count_names)
OTHER = "_other"


class BulkHistogram(Collector):
    """A Prometheus histogram fed a batch of values at once (one numpy call per batch, not a
    locked ``observe`` per event: the event -> score latency is observed for every event)."""

    def __init__(self, name: str, documentation: str, buckets: Sequence[float],
                 registry: CollectorRegistry) -> None:  # fmt: skip
        self._name, self._doc = name, documentation
        self._bounds = np.asarray(buckets, dtype=np.float64)
        self._counts = np.zeros(len(buckets) + 1, np.int64)  # the last: above every bound
        self._sum = 0.0
        self._lock = threading.Lock()
        registry.register(self)

    def observe_many(self, values: np.ndarray) -> None:
        if not len(values):
            return
        index = np.searchsorted(self._bounds, values, side="left")  # le semantics
        counts = np.bincount(index, minlength=len(self._counts))
        with self._lock:
            self._counts += counts
            self._sum += float(values.sum())

    def collect(self):
        with self._lock:
            cumulative = np.cumsum(self._counts).tolist()
            total = self._sum
        buckets = [(_le(b), c) for b, c in zip(self._bounds.tolist(), cumulative, strict=False)]
        buckets.append(("+Inf", cumulative[-1]))
        family = HistogramMetricFamily(self._name, self._doc)
        family.add_metric([], buckets, total)
        yield family


def _le(bound: float) -> str:
    return str(float(bound))


class WorkerMetrics:
    """Every series a worker reports; one instance per worker, never module-level state."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events_in = Counter("crmrisk_events_in", "Inbound messages consumed.", registry=r)
        self.dead_letters = Counter(
            "crmrisk_dead_letters", "Messages sent to the DLQ.", ["reason"], registry=r
        )
        self.stored = Counter(
            "crmrisk_events_stored", "Appends by outcome.", ["status"], registry=r
        )
        self.scores = Counter("crmrisk_scores", "Scores published.", ["domain"], registry=r)
        self.alerts = Counter("crmrisk_alerts", "Alerts published.", ["domain"], registry=r)
        self.batch_size = Histogram(
            "crmrisk_batch_size", "Messages per processed batch.", buckets=_SIZE_BUCKETS, registry=r
        )
        self.queue_delay_ms = Histogram(
            "crmrisk_queue_delay_ms",
            "Kafka timestamp -> start of processing, per batch (oldest message).",
            buckets=_MS_BUCKETS,
            registry=r,
        )
        self.model_ms = Histogram(
            "crmrisk_model_ms", "Forward pass time per batch.", buckets=_MS_BUCKETS, registry=r
        )
        self.challenger_rows = Counter(
            "crmrisk_challenger_rows",
            "Rows scored by a challenger on trial (shadow: every scored row again; canary: its "
            "share of customers).",
            ["domain", "mode"],
            registry=r,
        )
        self.challenger_failures = Counter(
            "crmrisk_challenger_failures",
            "Rows a challenger failed to score (a canary's are scored by the champion instead).",
            ["domain", "mode"],
            registry=r,
        )
        self.challenger_ms = Histogram(
            "crmrisk_challenger_model_ms",
            "A challenger's forward pass time per batch (the shadow's cost on the scoring step).",
            buckets=_MS_BUCKETS,
            registry=r,
        )
        self.latency_ms = BulkHistogram(
            "crmrisk_event_to_score_ms",
            "Inbound Kafka timestamp -> score acknowledged by Kafka.",
            _MS_BUCKETS,
            r,
        )
        self.assigned = Gauge(
            "crmrisk_assigned_partitions",
            "Input partitions assigned to this worker (their state is held in its memory).",
            registry=r,
        )
        self.in_flight = Gauge(
            "crmrisk_batches_in_flight",
            "Batches published whose alerts, state write and commit are pending.",
            registry=r,
        )
        self.lag = Gauge(
            "crmrisk_consumer_lag",
            "Messages behind the high watermark (assigned partitions).",
            registry=r,
        )
        self.outage_retries = Counter(
            "crmrisk_outage_retries",
            "Delivery steps retried because Redis or Kafka was unreachable.",
            ["dependency"],
            registry=r,
        )
        # The field contract (stream/field_contract.py); names bounded by ``count_names``.
        self.coerced_fields = Counter(
            "crmrisk_coerced_fields",
            "Field values taken as another type: numeric text as its number (to=number), blank "
            "or (under the coerce policy) invalid values as missing (to=missing).",
            ["domain", "field", "to"],
            registry=r,
        )
        self.unknown_fields = Counter(
            "crmrisk_unknown_fields",
            "Field names the domain's model does not know, per name (the first 100 per domain; "
            "later ones as _other).",
            ["domain", "field"],
            registry=r,
        )
        self.unknown_kinds = Counter(
            "crmrisk_unknown_kinds",
            "Event kinds the domain's model does not know, per kind (the first 100 per domain; "
            "later ones as _other).",
            ["domain", "kind"],
            registry=r,
        )
        self._names: dict[tuple[int, str], set[str]] = {}  # (id(series), domain) -> names
        self.rebuilt = Counter(
            "crmrisk_state_rebuilt_events",
            "Past events re-applied to rebuild state that Redis lost.",
            registry=r,
        )
        self.last_step = Gauge(
            "crmrisk_last_step_seconds", "Unix time of the last completed loop step.", registry=r
        )
        self.last_step_s: float | None = None
        self.partitions_owned = 0  # what ``assigned`` says, readable without a scrape
        # Exact recent event -> score latencies (ms) for summaries; the histogram is for scraping.
        self.recent_latency_ms: deque[float] = deque(maxlen=200_000)

    def count_names(self, counter: Counter, counts: Mapping[tuple, int]) -> None:
        """Add ``counts`` keyed ``(domain, name, *labels)`` to ``counter``, with at most
        ``MAX_NAMES`` names per (series, domain): names come from producers, and every new one
        would be a series for good; later ones are counted as ``_other``."""
        for (domain, name, *rest), n in counts.items():
            seen = self._names.setdefault((id(counter), domain), set())
            if name not in seen:
                if len(seen) >= MAX_NAMES:
                    name = OTHER
                else:
                    seen.add(name)
            counter.labels(domain, name, *rest).inc(n)

    def observe_latency(self, latency_ms: np.ndarray) -> None:
        """Event -> score latencies of a batch (ms)."""
        self.latency_ms.observe_many(latency_ms)
        self.recent_latency_ms.extend(latency_ms.tolist())

    def mark_step(self) -> None:
        """Record that the loop completed a step (idle or not): what /health checks."""
        self.last_step_s = time.time()
        self.last_step.set(self.last_step_s)


class _Handler(BaseHTTPRequestHandler):
    metrics: Scraped
    healthy: Callable[[], dict]
    token: str | None

    def do_GET(self) -> None:
        if self.token is not None and not authorized(self.headers.get("Authorization"), self.token):
            body, status, kind = b"unauthorized\n", 401, "text/plain"
        elif self.path.startswith("/metrics"):
            body = generate_latest(self.metrics.registry)
            if self.metrics.registry is not REGISTRY:  # process-wide series: model reloads
                body += generate_latest(REGISTRY)
            status, kind = 200, CONTENT_TYPE_LATEST
        elif self.path.startswith("/health"):
            report = self.healthy()
            body = json.dumps(report).encode()
            status, kind = (200 if report.get("ok") else 503), "application/json"
        else:
            body, status, kind = b"not found\n", 404, "text/plain"
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        if status == 401:
            self.send_header("WWW-Authenticate", CHALLENGE)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


class Scraped(Protocol):
    """What ``serve`` needs: a registry to expose and when the loop last completed a step."""

    registry: CollectorRegistry
    last_step_s: float | None


def health_report(
    metrics: Scraped, stale_after_s: float, checks: Sequence[Callable[[], str | None]] = ()
) -> dict:
    """What /health answers: ``ok``, a ``status`` (ok | stale | degraded) and the reasons.

    >>> class M: last_step_s = time.time()
    >>> health_report(M(), 30.0, [lambda: "model pointer unreadable"])["status"]
    'degraded'
    """
    last = metrics.last_step_s
    age = None if last is None else time.time() - last
    reasons = [reason for check in checks if (reason := check())]
    fresh = age is not None and age < stale_after_s
    status = "stale" if not fresh else "degraded" if reasons else "ok"
    if not fresh:
        reasons.insert(0, "the loop has not completed a step recently")
    return {"ok": status == "ok", "status": status, "reasons": reasons, "last_step_age_s": age}


def serve(
    metrics: Scraped,
    port: int,
    stale_after_s: float = 30.0,
    host: str = "127.0.0.1",
    checks: Sequence[Callable[[], str | None]] = (),
    token: str | None = None,
) -> ThreadingHTTPServer:
    """Serve /metrics and /health on a daemon thread; ``server.shutdown()`` stops it.

    ``host`` is loopback by default; a container sets it to 0.0.0.0 so that a published port
    and Prometheus in another container can reach it, which needs a ``token``: every request
    must then carry it (``stream/access.py``), else 401. Without one, a ``host`` beyond
    loopback raises ``InsecureListenError``. Each of ``checks`` returns None when all is well,
    else the reason the worker is degraded.
    """
    check_listen(host, token, "/metrics and /health")

    def healthy() -> dict:
        return health_report(metrics, stale_after_s, checks)

    handler = type(
        "Handler",
        (_Handler,),
        {"metrics": metrics, "healthy": staticmethod(healthy), "token": token},
    )
    server = ThreadingHTTPServer((host, port), handler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
