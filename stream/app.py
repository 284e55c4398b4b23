"""Workers built from ``Settings``: the composition root of the CLI, the demo, tests, benchmarks.

``build_worker`` wires the pipeline's ports (``stream/pipeline.py``) to Kafka and Redis for one
role: ``ingest`` consumes ``crm.events`` and scores inline (or, with the topic handoff, produces
score requests); ``infer`` consumes ``risk.score-requests`` and scores them. ``run_worker`` runs one
until a stop event is set. Nothing here is a command line: ``crmrisk/commands/worker.py`` is a
thin shell over it.
"""

from __future__ import annotations

import asyncio
import atexit
import gc
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis
import torch

from lifecycle import ModelPointer
from lifecycle.registry import ModelRegistry
from state import AlertTable, PartitionFence, WindowTable
from stream.alert_policy import AlertPolicy
from stream.alerting import Alerter, ProcessAlerts
from stream.batch import BatchStages, EventSide, ScoreSide
from stream.challenger import Challenger
from stream.field_contract import FieldContract
from stream.kafka_io import FastProducer, KafkaHistory, KafkaSource, new_consumer
from stream.metrics import WorkerMetrics
from stream.models import DomainModel, load_domain_model
from stream.outage import Outage
from stream.ownership import Ownership
from stream.pipeline import Pipeline, Topics
from stream.scorer import resolve_device

if TYPE_CHECKING:  # the type only: library code never builds Settings
    from crmrisk.settings import Settings

__all__ = [
    "ROLES",
    "Worker",
    "build_worker",
    "follow_pointer",
    "latest_model_dir",
    "load_models",
    "model_pointer",
    "quiet_kafka_clients",
    "redis_client",
    "run_worker",
    "worker_outage",
]

log = logging.getLogger(__name__)

ROLES = ("ingest", "infer")


def quiet_kafka_clients() -> None:
    """kafka-python and aiokafka log every connection at INFO; keep the CLI readable."""
    for name in ("kafka", "aiokafka"):
        logging.getLogger(name).setLevel(logging.WARNING)


def redis_client(settings: Settings) -> redis.Redis:
    """A client for ``settings.redis``: redis-py's cluster client when ``redis.cluster`` is set
    (it learns every node from the one in the URL and follows failovers)."""
    r = settings.redis
    if r.cluster:
        from redis.cluster import RedisCluster

        return RedisCluster.from_url(r.url, **r.client_kwargs())  # type: ignore[return-value]
    return redis.Redis.from_url(r.url, **r.client_kwargs())


def model_pointer(settings: Settings, client: redis.Redis | None = None) -> ModelPointer:
    """The live-model pointer: journal beside the registry (``<model.dir>/live``), Redis copy."""
    return ModelPointer(
        client or redis_client(settings),
        settings.redis.key_prefix,
        settings.training.pointer_history,
        Path(settings.model.dir) / "live",
    )


def latest_model_dir(settings: Settings, domain: str) -> Path | None:
    """The registry's newest version of ``domain`` under ``settings.model.dir``, if any."""
    latest = ModelRegistry(settings.model.dir).latest(domain)
    return None if latest is None else latest.path


def load_models(
    settings: Settings, domains: Sequence[str], model_dirs: Mapping[str, Path] | None = None
) -> dict[str, DomainModel]:
    """Each domain's model from ``model_dirs`` or else the registry's newest version.

    Raises ``LookupError`` naming the domain when there is none.
    """
    device = resolve_device(settings.scoring.device)
    if device.type == "cpu":
        torch.set_num_threads(1)  # two cores are shared with Kafka and Redis
    given = dict(model_dirs or {})
    out = {}
    for domain in domains:
        directory = given.get(domain) or latest_model_dir(settings, domain)
        if directory is None:
            raise LookupError(
                f"no model for {domain!r} under {settings.model.dir}: train one or pass --model"
            )
        out[domain] = _load(settings, directory, domain, device)
    return out


def _load(settings: Settings, directory: Path, domain: str, device: torch.device) -> DomainModel:
    s = settings.scoring
    return load_domain_model(
        directory, domain, device, s.top_events, s.reasons, s.reason_steps, s.precision,
        s.cuda_graphs,
    )  # fmt: skip


def follow_pointer(settings: Settings, domains: Sequence[str]):
    """A started ``ModelWatcher`` on the live pointer, and the models it loaded first."""
    from lifecycle.watcher import ModelWatcher

    device = resolve_device(settings.scoring.device)
    k = settings.kafka
    watcher = ModelWatcher(
        ModelRegistry(settings.model.dir),
        model_pointer(settings),
        domains,
        load=lambda v: _load(settings, v.path, v.domain, device),
        kafka_config=k.client_config(),
        topic=k.topics.model_updates,
        check_every_s=settings.training.reload_check_every_s,
    )
    return watcher, {d: loaded.value for d, loaded in watcher.start().items()}


@dataclass
class Worker:
    """A pipeline and the clients it owns; ``run`` starts them, steps, and stops them."""

    pipeline: Pipeline
    consumer: Any
    producer: FastProducer
    client: redis.Redis

    async def run(self, stop: asyncio.Event, idle_timeout_s: float = 0.5) -> None:
        """Step until ``stop`` is set; an exception propagates (restart from committed offsets).
        On the way out, what is in flight is completed and committed first."""
        # The loop shares the interpreter with the explanation, state-write and producer
        # threads: hand the GIL over every 0.5 ms (default 5) so a batch never waits long.
        sys.setswitchinterval(0.0005)
        await self.producer.start()
        # The alert process loads torch and the models (seconds of CPU on a small machine):
        # before the worker takes partitions, not while it scores their first events.
        await self.pipeline.ready()
        await self.consumer.start()
        freeze_heap()
        try:
            while not stop.is_set():
                await self.pipeline.step(idle_timeout_s)
        finally:
            try:
                await self.pipeline.close()
            finally:
                await self.consumer.stop()
                await self.producer.stop()
                self.client.close()


def freeze_heap() -> None:
    """Move what is alive now (models, libraries, settings) out of the collector's sight.

    A full collection scans every tracked object: with torch and the served models loaded that
    stalled a batch for ~0.5 s (gc callbacks on ``benchmarks/hot_path.py``). What the loop
    allocates afterwards is still collected; only the startup heap is never scanned again.
    """
    gc.collect()
    gc.freeze()
    # Frozen objects are never collected, not even at exit, where extension modules (triton's
    # nanobind bindings, imported by torch) would then report them as leaked.
    atexit.unregister(gc.unfreeze)
    atexit.register(gc.unfreeze)


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
    events = None
    if role == "ingest":
        events = EventSide(
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
    scoring = None
    if role == "infer" or handoff == "inline":
        policy = AlertPolicy(s.alert_threshold, s.alert_hysteresis, s.alert_cooldown_s)
        scoring = ScoreSide(
            scorers={d: m.scorer for d, m in models.items()},
            alert_states={d: AlertTable(r.ttl_s) for d in models},
            alerter=Alerter(policy, s.risk_types),
        )
    topics = Topics(
        dead_letters=k.topics.dead_letters,
        scores=k.topics.scores,
        alerts=k.topics.alerts,
        score_requests=k.topics.score_requests,
        shadow_scores=k.topics.shadow_scores,
    )
    metrics = metrics or WorkerMetrics()
    stages = BatchStages(topic, Ownership(topic, fence), fence, events=events, scoring=scoring)
    alert_stage = None
    if scoring is not None and s.reasons > 0 and s.explain_in_process:
        # Reason codes on the worker's device (the GPU where it scores on one).
        device = str(resolve_device(s.device))
        alert_stage = ProcessAlerts(
            scoring.alerter, s.top_events, s.reasons, s.reason_steps, device
        )
        alert_stage.warm({d: m.scorer.source for d, m in models.items() if m.scorer.source})
    pipeline = Pipeline(
        source,
        producer,
        fence,
        stages,
        topics,
        metrics,
        history=KafkaHistory(k.client_config(), f"{k.client_id}-restore")
        if s.rebuild_state
        else None,
        between_batches=partial(_reloaded, watcher) if watcher is not None else None,
        trials_between_batches=partial(_trials, watcher) if watcher is not None else None,
        on_alert=on_alert,
        outage=outage or worker_outage(settings, metrics),
        alert_stage=alert_stage,
        max_inflight=s.max_inflight,
        max_customers=s.max_customers,
    )
    source.subscribe(pipeline.revoked, pipeline.assigned)
    return Worker(pipeline, consumer, producer, client)


def _reloaded(watcher: Any) -> dict[str, DomainModel]:
    """The models the watcher reloaded since the last batch (their heap frozen as at start)."""
    kits = {d: v.value for d, v in watcher.take().items()}
    if kits:
        freeze_heap()
    return kits


def _trials(watcher: Any) -> dict[str, Challenger | None]:
    """Trials the watcher started or ended since the last batch, as challengers."""
    out: dict[str, Challenger | None] = {}
    for domain, loaded in watcher.take_trials().items():
        if loaded is None:
            out[domain] = None
        else:
            trial = loaded.trial
            out[domain] = Challenger(trial.mode, loaded.model.value.scorer, trial.percent)
    if out:
        freeze_heap()
    return out


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
