"""``crmrisk worker ingest | infer | train``: the workers, as a command line over the wiring.

``ingest`` consumes ``crm.events``; with ``--handoff inline`` (default) it also scores, in the
same process, the exact windows its appends returned; with ``--handoff topic`` it produces them
to ``risk.score-requests`` for ``infer`` workers. Several of each may run in one consumer group.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated

import typer
from pydantic import SecretStr

from crmrisk.commands.context import current_settings
from crmrisk.commands.trainer import train_worker
from crmrisk.errors import require_services
from crmrisk.settings import Settings
from crmrisk.stream.metrics import WorkerMetrics, serve
from crmrisk.wiring.clients import quiet_kafka_clients
from crmrisk.wiring.models import follow_pointer, load_models
from crmrisk.wiring.worker import run_worker, worker_outage

__all__ = ["register"]


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value else None


def _serve_until_signal(
    settings: Settings,
    role: str,
    domains: list[str],
    model_dirs: dict[str, Path],
    handoff: str,
    live: bool,
) -> None:
    quiet_kafka_clients()
    # The clients would retry absent services for ever: at start, a clear error instead.
    require_services(settings)
    watcher = None
    try:
        if live:
            watcher, models = follow_pointer(settings, domains)
        else:
            models = load_models(settings, domains, model_dirs)
    except LookupError as exc:
        raise typer.BadParameter(str(exc)) from None
    metrics = WorkerMetrics()
    outage = worker_outage(settings, metrics)
    checks = [outage.health] + ([watcher.health] if watcher is not None else [])
    server = (
        serve(
            metrics,
            settings.scoring.metrics_port,
            host=settings.scoring.metrics_host,
            checks=checks,
            token=_secret(settings.scoring.metrics_token),
        )
        if settings.scoring.metrics_port
        else None
    )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_worker(
            settings,
            role,
            models,
            stop,
            handoff=handoff,
            metrics=metrics,
            watcher=watcher,
            outage=outage,
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
        help="Serve the live version (the model pointer) and hot-swap promoted ones.",
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
    settings = current_settings()
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
    settings = current_settings()
    domain = domain or ["credit"]
    _serve_until_signal(settings, "infer", domain, _model_dirs(domain, model), "topic", live)


app.command("train")(train_worker)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="worker")
