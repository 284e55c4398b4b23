"""``crmrisk demo``: the whole pipeline live on one domain, then a summary.

Steps: local services up (only if they do not answer; only those are stopped at the end), a
model found or quick-trained, run-scoped topics and Redis keys (so a demo never mixes with
another run and can be repeated), an ingest worker started in-process, a slice of the dataset
replayed at ``--rate``, live alerts printed, then events / scores / alerts / DLQ and p50/p99
event -> score latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from crmrisk.commands.alerts import format_alert
from crmrisk.commands.context import current_settings
from crmrisk.commands.services import launcher_for
from crmrisk.commands.topics import create_topics
from crmrisk.deploy import kafka_broker_count, redis_answers
from crmrisk.lifecycle.registry import ModelRegistry
from crmrisk.settings import Settings
from crmrisk.stream.metrics import WorkerMetrics
from crmrisk.training.datasets.feed import dataset_events, dataset_outcomes, load_records
from crmrisk.wiring.clients import quiet_kafka_clients
from crmrisk.wiring.models import load_models
from crmrisk.wiring.replay import replay
from crmrisk.wiring.worker import run_worker

__all__ = ["find_or_train_model", "register"]

log = logging.getLogger(__name__)
_console = Console()


def find_or_train_model(
    settings: Settings, domain: str, quick_epochs: int, quick_rows: int | None = None
) -> Path:
    """The newest checkpoint of ``domain`` (registry, then ``<models>/<domain>/*``), else a
    quick training run of the default variant."""
    root = Path(settings.model.dir)
    latest = ModelRegistry(root).latest(domain) if (root / "versions").exists() else None
    if latest is not None:
        return latest.path
    plain = sorted(p.parent for p in (root / domain).glob("*/manifest.json"))
    if plain:
        return plain[-1]
    from crmrisk.training.train_job import TrainJob, train_domain

    _console.print(f"[yellow]no {domain} model under {root}: quick-training one[/yellow]")
    t = settings.training
    job = TrainJob(
        domain=domain,
        variant=settings.model.variant,
        data_dir=t.data_dir,
        models_dir=root,
        seed=t.seed,
        epochs=quick_epochs,
        batch_size=t.batch_size,
        learning_rate=t.learning_rate,
        patience=t.patience,
        window=settings.redis.window,
        max_rows=quick_rows,
        device="cpu",  # a quick model: the CPU is enough
    )
    saved = train_domain(job, show_progress=True)
    _console.print(f"trained {domain} {saved.version} in {saved.fit_seconds:.0f} s: {saved.path}")
    return saved.path


def _scoped(settings: Settings, tag: str) -> Settings:
    """Run-scoped topic names, key prefix and consumer group on the same services."""
    t = settings.kafka.topics
    topics = t.model_dump() | {role: f"{name}.demo-{tag}" for role, name in t.by_role().items()}
    return Settings(
        kafka=settings.kafka.model_dump() | {"group_id": f"demo-{tag}", "topics": topics},
        redis=settings.redis.model_dump()
        | {"key_prefix": f"{settings.redis.key_prefix}:demo-{tag}"},
        scoring=settings.scoring.model_dump(),
        model=settings.model.model_dump(),
        training=settings.training.model_dump(),
        services=settings.services.model_dump(),
    )


def _cleanup(settings: Settings) -> None:
    import redis
    from kafka import KafkaAdminClient

    r = settings.redis
    client = redis.Redis.from_url(r.url, **r.client_kwargs())
    for key in client.scan_iter(f"{r.key_prefix}:*", count=5000):
        client.delete(key)
    client.close()
    admin = KafkaAdminClient(**settings.kafka.client_config(), client_id="crmrisk-demo")
    with contextlib.suppress(Exception):
        admin.delete_topics(list(settings.kafka.topics.by_role().values()))
    admin.close()


def command(
    domain: Annotated[str, typer.Option("--domain", "-d", help="Domain to replay.")] = "credit",
    customers: Annotated[int, typer.Option(help="Customers to replay.")] = 3000,
    rate: Annotated[
        float,
        typer.Option(
            help="Events per second (0 = flat out). The default is well under one in-process "
            "worker's ~10k/s on 2 cores, so latencies show the pipeline, not a queue."
        ),
    ] = 2000.0,
    show: Annotated[int, typer.Option(help="Live alerts to print before counting quietly.")] = 15,
    quick_epochs: Annotated[int, typer.Option(help="Epochs if a model must be trained.")] = 3,
    quick_rows: Annotated[
        int, typer.Option(help="Training customers if a model must be trained (0 = all).")
    ] = 6000,
    keep: Annotated[bool, typer.Option(help="Keep the run's topics and Redis keys.")] = False,
    dashboard_port: Annotated[
        int, typer.Option(help="Port of the live dashboard served meanwhile (0 = none).")
    ] = 8050,
    linger: Annotated[
        float, typer.Option(help="Seconds the dashboard stays up after the replay.")
    ] = 0.0,
) -> None:
    """Run the pipeline live on one domain: services, model, worker, replay, alerts, summary."""
    quiet_kafka_clients()
    settings = current_settings()
    launcher = launcher_for(settings)
    k, r = settings.kafka, settings.redis
    security = {key: v for key, v in k.client_config().items() if key != "bootstrap_servers"}
    need_kafka = not kafka_broker_count(k.bootstrap_servers, client=security)
    need_redis = not redis_answers(r.url, **r.client_kwargs())
    started: list[str] = []
    if need_kafka or need_redis:
        _console.print("starting local services ...")
        states = launcher.up(kafka=need_kafka, redis=need_redis)
        started = [s.name for s in states if s.started_s is not None]
    tag = uuid.uuid4().hex[:6]
    run = _scoped(settings, tag)
    try:
        checkpoint = find_or_train_model(settings, domain, quick_epochs, quick_rows or None)
        create_topics(run.kafka)
        models = load_models(run, [domain], {domain: checkpoint})
        records = load_records(domain, settings.training.data_dir, settings.training.seed)
        records = records[:customers]
        events = dataset_events(records, domain)
        expected = sum(e.kind != "profile" for e in events)
        _console.print(
            f"[bold]demo {tag}[/bold]: {domain} model {models[domain].version} from {checkpoint}; "
            f"replaying {len(events):,} events of {len(records):,} customers at "
            f"{rate or 'max'} ev/s"
        )
        _run_live(
            run, models, events, dataset_outcomes(records, domain), rate, expected, show,
            (dashboard_port, linger, {domain: checkpoint}),
        )  # fmt: skip
    finally:
        if not keep:
            _cleanup(run)
        else:
            _console.print(
                f"kept: RISK_REDIS__KEY_PREFIX={run.redis.key_prefix} "
                f"RISK_KAFKA__TOPICS__ALERTS={run.kafka.topics.alerts}"
            )
        if started:
            launcher.down(kafka="kafka" in started, redis="redis" in started, cluster=False)
            _console.print(f"stopped what the demo started: {', '.join(started)}")


def _run_live(settings, models, events, outcomes, rate, expected, show, page) -> None:
    metrics = WorkerMetrics()
    shown = [0]
    port, linger, served = page
    dashboard = None
    if port:
        from crmrisk.commands.dashboard import serve_in_thread
        from crmrisk.dashboard.metrics import from_registry

        dashboard = serve_in_thread(
            settings, list(models), "127.0.0.1", port, from_registry(metrics.registry), served
        )
        _console.print(f"live dashboard: [bold]{dashboard.url}[/bold]")

    def on_alert(alert) -> None:
        shown[0] += 1
        if shown[0] <= show:
            _console.print(format_alert(alert))
        elif shown[0] == show + 1:
            _console.print("[dim]... further alerts are counted, not printed[/dim]")

    holder: dict = {}
    ready = threading.Event()

    def work() -> None:
        async def main() -> None:
            holder["loop"], holder["stop"] = asyncio.get_running_loop(), asyncio.Event()
            ready.set()
            await run_worker(
                settings, "ingest", models, holder["stop"], metrics=metrics, on_alert=on_alert
            )

        try:
            asyncio.run(main())
        except BaseException as exc:  # reported after the replay
            holder["error"] = exc
            ready.set()

    thread = threading.Thread(target=work, name="demo-worker", daemon=True)
    thread.start()
    ready.wait(60)
    # Replay once the worker owns its partitions: a group join takes seconds, which would
    # otherwise show as the first events' latency.
    deadline = time.monotonic() + 60
    while metrics.partitions_owned == 0 and "error" not in holder:
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    started = time.perf_counter()
    asyncio.run(replay(settings, events, outcomes, rate or None))
    deadline = time.monotonic() + 300
    while _count(metrics.scores) < expected and time.monotonic() < deadline:
        if "error" in holder:
            break
        time.sleep(0.2)
    took = time.perf_counter() - started
    if "loop" in holder:
        holder["loop"].call_soon_threadsafe(holder["stop"].set)
    thread.join(60)
    if dashboard is not None:
        if linger:
            _console.print(f"dashboard stays up {linger:.0f} s: {dashboard.url}")
            time.sleep(linger)
        dashboard.stop()
    if "error" in holder:
        raise holder["error"]
    _summary(metrics, len(events), took)


def _count(counter) -> float:
    return sum(s.value for m in counter.collect() for s in m.samples if s.name.endswith("_total"))


def _summary(metrics: WorkerMetrics, published: int, took: float) -> None:
    lat = np.asarray(metrics.recent_latency_ms)
    table = Table(title="demo summary")
    table.add_column("what")
    table.add_column("value", justify="right")
    rows = [
        ("events published", f"{published:,}"),
        ("events consumed", f"{_count(metrics.events_in):,.0f}"),
        ("scores published", f"{_count(metrics.scores):,.0f}"),
        ("alerts published", f"{_count(metrics.alerts):,.0f}"),
        ("dead letters", f"{_count(metrics.dead_letters):,.0f}"),
        ("wall time", f"{took:.1f} s"),
        ("event -> score p50", f"{np.percentile(lat, 50):.1f} ms" if lat.size else "-"),
        ("event -> score p99", f"{np.percentile(lat, 99):.1f} ms" if lat.size else "-"),
    ]
    for what, value in rows:
        table.add_row(what, value)
    _console.print(table)


def register(root: typer.Typer) -> None:
    root.command("demo", help=" ".join((command.__doc__ or "").split()))(command)
