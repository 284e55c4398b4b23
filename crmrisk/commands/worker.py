"""``crmrisk worker ingest | infer``: the scoring workers, assembled from ``Settings``.

``ingest`` consumes ``crm.events``; with ``--handoff inline`` (default) it also scores, in the
same process, the exact windows its appends returned; with ``--handoff topic`` it produces them
to ``risk.score-requests`` for ``infer`` workers. Several of each may run in one consumer group.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated

import redis
import torch
import typer

from crmrisk.commands.trainer import train_worker
from crmrisk.settings import Settings
from model.registry import ModelRegistry
from state import AlertStateStore, CustomerSequenceStore, LatestScoreStore, ModelPointer
from stream.alert_policy import AlertPolicy
from stream.alerting import Alerter
from stream.ingest import Ingestor
from stream.kafka_io import BatchProducer, new_consumer
from stream.metrics import WorkerMetrics, serve
from stream.models import DomainModel, load_domain_model
from stream.scorer import resolve_device
from stream.worker import EventsLoop, Inference, InferenceLoop, produce_requests, run_until

__all__ = ["follow_pointer", "load_models", "quiet_kafka_clients", "register", "run_worker"]

log = logging.getLogger(__name__)


def resolve_model_dir(settings: Settings, domain: str, given: Path | None) -> Path:
    """``given``, else the registry's newest version of ``domain`` under ``settings.model.dir``."""
    if given is not None:
        return given
    latest = ModelRegistry(settings.model.dir).latest(domain)
    if latest is None:
        raise typer.BadParameter(
            f"no model for {domain!r} under {settings.model.dir}: train one or pass --model"
        )
    return latest.path


def quiet_kafka_clients() -> None:
    """kafka-python and aiokafka log every connection at INFO; keep the CLI readable."""
    for name in ("kafka", "aiokafka"):
        logging.getLogger(name).setLevel(logging.WARNING)


def load_models(
    settings: Settings, domains: Sequence[str], model_dirs: dict[str, Path] | None = None
) -> dict[str, DomainModel]:
    device = resolve_device(settings.scoring.device)
    if device.type == "cpu":
        torch.set_num_threads(1)  # two cores are shared with Kafka and Redis
    given = model_dirs or {}
    return {
        d: load_domain_model(
            resolve_model_dir(settings, d, given.get(d)), d, device, settings.scoring.top_events
        )
        for d in domains
    }


def _redis(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.redis.url, **settings.redis.client_kwargs())


def _inference(
    settings: Settings,
    client: redis.Redis,
    producer: BatchProducer,
    models: dict[str, DomainModel],
    metrics: WorkerMetrics,
    on_alert: Callable[[object], None] | None,
) -> Inference:
    s, r = settings.scoring, settings.redis
    policy = AlertPolicy(s.alert_threshold, s.alert_hysteresis, s.alert_cooldown_s)
    return Inference(
        producer,
        {d: m.scorer for d, m in models.items()},
        Alerter(AlertStateStore(client, r.key_prefix, r.ttl_s), policy, s.risk_types),
        LatestScoreStore(client, r.key_prefix, r.ttl_s),
        settings.kafka.topics.scores,
        settings.kafka.topics.alerts,
        metrics,
        on_alert,
    )


def follow_pointer(settings: Settings, domains: Sequence[str]):
    """A started ``ModelWatcher`` on the live pointer, and the models it loaded first."""
    from stream.model_updates import ModelWatcher

    device = resolve_device(settings.scoring.device)
    k = settings.kafka
    watcher = ModelWatcher(
        ModelRegistry(settings.model.dir),
        ModelPointer(
            _redis(settings), settings.redis.key_prefix, settings.training.pointer_history
        ),
        domains,
        load=lambda v: load_domain_model(v.path, v.domain, device, settings.scoring.top_events),
        kafka_config=k.client_config(),
        topic=k.topics.model_updates,
        check_every_s=settings.training.reload_check_every_s,
    )
    return watcher, {d: loaded.value for d, loaded in watcher.start().items()}


async def run_worker(
    settings: Settings,
    role: str,
    models: dict[str, DomainModel],
    stop: asyncio.Event,
    *,
    handoff: str | None = None,
    metrics: WorkerMetrics | None = None,
    on_alert: Callable[[object], None] | None = None,
    watcher=None,
) -> None:
    """Run one worker (``role`` = 'ingest' or 'infer') until ``stop`` is set.

    With a ``watcher`` (``follow_pointer``), a model promoted meanwhile is swapped in between
    two batches: it is fully loaded and verified off the loop first, and a batch is scored by
    one version only, so a reload neither loses nor double-scores a message.
    """
    k, r, s = settings.kafka, settings.redis, settings.scoring
    handoff = handoff or s.handoff
    metrics = metrics or WorkerMetrics()
    client = _redis(settings)
    producer = BatchProducer(k.client_config(), f"{k.client_id}-{role}")
    source = k.topics.events if role == "ingest" else k.topics.score_requests
    consumer = new_consumer(
        k.client_config(), [source], f"{k.group_id}-{role}", f"{k.client_id}-{role}"
    )
    await producer.start()
    await consumer.start()
    ingestor: Ingestor | None = None
    inference: Inference | None = None

    def swap_models() -> None:
        for domain, loaded in watcher.take().items():
            kit: DomainModel = loaded.value
            if inference is not None:
                inference.swap(domain, kit.scorer)
            if ingestor is not None:
                ingestor.swap(domain, kit.encoder)
            log.info("%s: now scoring with model %s", domain, kit.version)

    between = swap_models if watcher is not None else None
    try:
        if role == "ingest":
            ingestor = Ingestor(
                CustomerSequenceStore(client, r.key_prefix, r.window, r.ttl_s),
                {d: m.encoder for d, m in models.items()},
                k.max_message_bytes,
                s.exposure_fields,
            )
            if handoff == "inline":
                inference = _inference(settings, client, producer, models, metrics, on_alert)
                pass_on = inference.run
            else:
                pass_on = produce_requests(producer, k.topics.score_requests)
            loop = EventsLoop(
                consumer,
                producer,
                ingestor,
                pass_on,
                k.topics.dead_letters,
                metrics,
                s.max_batch_size,
                s.max_delay_ms,
                between,
            )
        else:
            inference = _inference(settings, client, producer, models, metrics, on_alert)
            loop = InferenceLoop(
                consumer, inference, metrics, s.max_batch_size, s.max_delay_ms, between
            )
        await run_until(loop.step, stop)
    finally:
        await consumer.stop()
        await producer.stop()
        client.close()


def _serve_until_signal(
    settings: Settings,
    role: str,
    domains: list[str],
    model_dirs: dict[str, Path],
    handoff: str,
    live: bool,
) -> None:
    quiet_kafka_clients()
    watcher = None
    if live:
        watcher, models = follow_pointer(settings, domains)
    else:
        models = load_models(settings, domains, model_dirs)
    metrics = WorkerMetrics()
    server = (
        serve(metrics, settings.scoring.metrics_port, host=settings.scoring.metrics_host)
        if settings.scoring.metrics_port
        else None
    )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_worker(
            settings, role, models, stop, handoff=handoff, metrics=metrics, watcher=watcher
        )

    try:
        asyncio.run(main())
    finally:
        if server is not None:
            server.shutdown()
        if watcher is not None:
            watcher.close()


app = typer.Typer(help="Run the scoring workers.", no_args_is_help=True)


_Domains = Annotated[
    list[str] | None, typer.Option("--domain", "-d", help="Domains to serve (default: credit).")
]
_Models = Annotated[list[Path] | None, typer.Option("--model", help="Checkpoint dir per --domain.")]
_Live = Annotated[
    bool,
    typer.Option(
        "--follow-pointer",
        help="Serve the live version (Redis model pointer) and hot-swap promoted ones.",
    ),
]


def _model_dirs(domains: list[str], model: list[Path] | None) -> dict[str, Path]:
    model = model or []
    if model and len(model) != len(domains):
        raise typer.BadParameter("give one --model per --domain, in the same order")
    return dict(zip(domains, model, strict=False))


@app.command("ingest")
def ingest(
    domain: _Domains = None,
    model: _Models = None,
    handoff: Annotated[
        str | None, typer.Option(help="inline | topic (default: RISK_SCORING__HANDOFF).")
    ] = None,
    live: _Live = False,
) -> None:
    """Consume crm.events: validate, encode, append to Redis, score (inline) or hand off."""
    settings = Settings()
    domain = domain or ["credit"]
    dirs = _model_dirs(domain, model)
    _serve_until_signal(settings, "ingest", domain, dirs, handoff or settings.scoring.handoff, live)


@app.command("infer")
def infer(
    domain: _Domains = None,
    model: _Models = None,
    live: _Live = False,
) -> None:
    """Consume risk.score-requests (from ingest --handoff topic): batch, score, publish."""
    settings = Settings()
    domain = domain or ["credit"]
    _serve_until_signal(settings, "infer", domain, _model_dirs(domain, model), "topic", live)


app.command("train")(train_worker)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="worker")
