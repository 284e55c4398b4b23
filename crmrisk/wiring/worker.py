"""Workers built from settings: the pipeline's ports wired to Kafka and Redis for one role.

``ingest`` consumes ``crm.events`` and scores inline (or, with the topic hand-off, produces
score requests); ``infer`` consumes ``risk.score-requests`` and scores them. ``run_worker`` runs
one until a stop event is set (``stream/worker.py``). Nothing here is a command line:
``crmrisk/commands/worker.py`` is a thin shell over it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from crmrisk.settings import Settings
from crmrisk.state import AlertTable, PartitionFence, WindowTable
from crmrisk.stream.alert_policy import AlertPolicy
from crmrisk.stream.alerting import Alerter, ProcessAlerts
from crmrisk.stream.field_contract import FieldContract
from crmrisk.stream.kafka_consumer import KafkaHistory, KafkaSource, new_consumer
from crmrisk.stream.kafka_producer import FastProducer
from crmrisk.stream.metrics import WorkerMetrics
from crmrisk.stream.models import DomainModel
from crmrisk.stream.outage import Outage
from crmrisk.stream.ownership import Ownership
from crmrisk.stream.pipeline import Pipeline
from crmrisk.stream.ports import Topics
from crmrisk.stream.score_side import ScoreSide
from crmrisk.stream.scorer import resolve_device
from crmrisk.stream.stages import BatchStages, EventSide
from crmrisk.stream.worker import Worker, watcher_hooks
from crmrisk.wiring.clients import redis_client

__all__ = [
    "ROLES",
    "build_worker",
    "event_side",
    "pipeline_topics",
    "run_worker",
    "score_side",
    "worker_outage",
]

ROLES = ("ingest", "infer")


def build_worker(
    settings: Settings,
    role: str,
    models: Mapping[str, DomainModel],
    *,
    handoff: str | None = None,
    metrics: WorkerMetrics | None = None,
    on_alert: Callable[[object], None] | None = None,
    watcher: Any = None,
    outage: Outage | None = None,
) -> Worker:
    """A worker of ``role`` ('ingest' or 'infer') serving ``models``, not yet started.

    With a ``watcher`` (``follow_pointer``), a model promoted meanwhile is swapped in between
    two batches: it is fully loaded and verified off the loop first, and a batch is scored by
    one version only, so a reload neither loses nor double-scores a message.

    ``outage`` (made here unless given, e.g. to put its ``health`` on ``/health`` first) retries
    delivery steps while Redis or Kafka is down. A worker restores partitions whose state Redis
    lost (or a tail of it) from its input topic unless ``scoring.rebuild_state`` is off.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    k, r, s = settings.kafka, settings.redis, settings.scoring
    handoff = "topic" if role == "infer" else handoff or s.handoff
    client = redis_client(settings)
    producer = FastProducer(k.client_config(), f"{k.client_id}-{role}")
    topic = k.topics.events if role == "ingest" else k.topics.score_requests
    consumer = new_consumer(
        k.client_config(),
        [],
        f"{k.group_id}-{role}",
        f"{k.client_id}-{role}",
        session_timeout_ms=k.session_timeout_ms,
    )
    source = KafkaSource(consumer, topic, s.max_batch_size, s.max_delay_ms)
    fence = PartitionFence(client, r.key_prefix, r.ttl_s, r.wait_replicas, r.wait_timeout_ms)
    events = event_side(settings, models) if role == "ingest" else None
    scoring = score_side(settings, models) if role == "infer" or handoff == "inline" else None
    metrics = metrics or WorkerMetrics()
    stages = BatchStages(topic, Ownership(topic, fence), fence, events=events, scoring=scoring)
    between, trials = watcher_hooks(watcher) if watcher is not None else (None, None)
    pipeline = Pipeline(
        source,
        producer,
        fence,
        stages,
        pipeline_topics(settings),
        metrics,
        history=KafkaHistory(k.client_config(), f"{k.client_id}-restore")
        if s.rebuild_state
        else None,
        between_batches=between,
        trials_between_batches=trials,
        on_alert=on_alert,
        outage=outage or worker_outage(settings, metrics),
        alert_stage=_alert_stage(settings, scoring, models),
        max_inflight=s.max_inflight,
        max_customers=s.max_customers,
    )
    source.subscribe(pipeline.revoked, pipeline.assigned)
    return Worker(pipeline, consumer, producer, client)


def event_side(settings: Settings, models: Mapping[str, DomainModel]) -> EventSide:
    """Ingest: each domain's encoder, field contract and windows, and the input limits."""
    k, r, s = settings.kafka, settings.redis, settings.scoring
    return EventSide(
        encoders={d: m.encoder for d, m in models.items()},
        contracts={
            d: FieldContract.of(
                m.encoder,
                s.field_policies.get(d, s.field_policy),
                s.unknown_policy,
                s.exposure_fields.get(d),
            )
            for d, m in models.items()
        },
        windows={
            d: WindowTable(r.window, m.encoder.event_dim, m.encoder.profile_dim, r.ttl_s)
            for d, m in models.items()
        },
        exposure_fields=s.exposure_fields,
        max_message_bytes=k.max_message_bytes,
        max_future_s=k.max_future_s,
    )


def score_side(settings: Settings, models: Mapping[str, DomainModel]) -> ScoreSide:
    """Scoring: each domain's scorer and alert states, and the alert policy."""
    s = settings.scoring
    policy = AlertPolicy(s.alert_threshold, s.alert_hysteresis, s.alert_cooldown_s)
    return ScoreSide(
        scorers={d: m.scorer for d, m in models.items()},
        alert_states={d: AlertTable(settings.redis.ttl_s) for d in models},
        alerter=Alerter(policy, s.risk_types),
    )


def _alert_stage(
    settings: Settings, scoring: ScoreSide | None, models: Mapping[str, DomainModel]
) -> ProcessAlerts | None:
    """Reason codes in a process of their own, on the worker's device (the GPU where it scores
    on one); None: the pipeline explains in a thread (or raises no alerts)."""
    s = settings.scoring
    if scoring is None or s.reasons == 0 or not s.explain_in_process:
        return None
    device = str(resolve_device(s.device))
    stage = ProcessAlerts(scoring.alerter, s.top_events, s.reasons, s.reason_steps, device)
    stage.warm({d: m.scorer.source for d, m in models.items() if m.scorer.source})
    return stage


def pipeline_topics(settings: Settings) -> Topics:
    """Where a worker's pipeline produces, from ``kafka.topics``."""
    by_role = settings.kafka.topics.by_role()
    return Topics(**{f.name: by_role[f.name] for f in dataclasses.fields(Topics)})


def worker_outage(settings: Settings, metrics: WorkerMetrics) -> Outage:
    """How a worker rides out a Redis or broker outage (``stream/outage.py``), from settings."""
    s = settings.scoring
    return Outage(
        metrics.outage_retries, max_s=s.outage_max_backoff_s, give_up_s=s.outage_give_up_s
    )


async def run_worker(
    settings: Settings,
    role: str,
    models: Mapping[str, DomainModel],
    stop: asyncio.Event,
    **options: Any,
) -> None:
    """``build_worker(settings, role, models, **options).run(stop)``."""
    await build_worker(settings, role, models, **options).run(stop)
