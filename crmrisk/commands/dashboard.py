"""``crmrisk dashboard``: the live web page (alerts with reasons, models, drift, customers).

``serve_in_thread`` is what ``crmrisk demo`` uses to show the page while it replays. Beyond
loopback, the page needs an access token (``RISK_DASHBOARD__TOKEN``); given one, it asks for it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from crmrisk.commands.context import current_settings
from crmrisk.settings import Settings

__all__ = ["DashboardServer", "dashboard_config", "register", "serve_in_thread"]

_console = Console()


def dashboard_config(
    settings: Settings, domains: Sequence[str], checkpoints: Mapping[str, Path] | None = None
):
    from crmrisk.dashboard.app import DashboardConfig

    k, r, t, d = settings.kafka, settings.redis, settings.training, settings.dashboard
    return DashboardConfig(
        kafka=k.client_config(),
        alerts_topic=k.topics.alerts,
        scores_topic=k.topics.scores,
        outcomes_topic=k.topics.outcomes,
        shadow_topic=k.topics.shadow_scores,
        redis_url=r.url,
        redis_kwargs=r.client_kwargs(),
        key_prefix=r.key_prefix,
        window=r.window,
        ttl_s=r.ttl_s,
        pointer_history=t.pointer_history,
        models_dir=settings.model.dir,
        data_dir=t.data_dir,
        seed=t.seed,
        domains=tuple(domains),
        alert_threshold=settings.scoring.alert_threshold,
        performance_chunk_s=d.performance_chunk_hours * 3600,
        performance_chunks=d.performance_chunks,
        performance_chunk_scores=d.performance_chunk_scores,
        performance_outcomes=d.performance_outcomes,
        performance_draws=d.performance_draws,
        performance_every_s=d.performance_every_s,
        shadow_scatter=d.shadow_scatter,
        checkpoints=dict(checkpoints or {}),
    )


class DashboardServer:
    """A uvicorn server of the dashboard on its own thread (``stop`` ends it)."""

    def __init__(self, server, thread: threading.Thread) -> None:
        self.server, self.thread = server, thread

    @property
    def url(self) -> str:
        config = self.server.config
        return f"http://{config.host}:{config.port}/"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def _access_token(settings: Settings, host: str) -> str | None:
    """The dashboard's access token; raises ``InsecureListenError`` for a ``host`` beyond
    loopback without one (before anything is built or connected)."""
    from crmrisk.stream.access import check_listen

    secret = settings.dashboard.token
    token = secret.get_secret_value() if secret else None
    check_listen(host, token, "the dashboard")
    return token


def serve_in_thread(
    settings: Settings,
    domains: Sequence[str],
    host: str,
    port: int,
    metrics: Callable[[], str | None],
    checkpoints: Mapping[str, Path] | None = None,
) -> DashboardServer:
    """Start the dashboard in a thread; returns once it accepts connections."""
    import uvicorn

    from crmrisk.dashboard.app import Dashboard
    from crmrisk.dashboard.routes import build_app

    token = _access_token(settings, host)
    app = build_app(
        Dashboard(dashboard_config(settings, domains, checkpoints), metrics), token=token
    )
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="dashboard", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not server.started:
        raise RuntimeError(f"the dashboard did not start on {host}:{port}")
    return DashboardServer(server, thread)


def command(
    domain: Annotated[
        list[str] | None, typer.Option("--domain", "-d", help="Domains shown (repeatable).")
    ] = None,
    host: Annotated[
        str,
        typer.Option(help="Interface to listen on (beyond loopback: set RISK_DASHBOARD__TOKEN)."),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8050,
    metrics_url: Annotated[
        str | None,
        typer.Option(help="A worker's Prometheus page (default: the local worker's)."),
    ] = None,
) -> None:
    """Serve the live dashboard: alerts with reasons, top customers, models, drift."""
    import uvicorn

    from crmrisk.dashboard.app import Dashboard
    from crmrisk.dashboard.metrics import from_url
    from crmrisk.dashboard.routes import build_app
    from crmrisk.errors import require_services
    from crmrisk.wiring.clients import quiet_kafka_clients

    quiet_kafka_clients()
    settings = current_settings()
    s = settings.scoring
    metrics_url = metrics_url or f"http://127.0.0.1:{s.metrics_port}/metrics"
    read_metrics = from_url(
        metrics_url, s.metrics_token.get_secret_value() if s.metrics_token else None
    )
    token = _access_token(settings, host)
    # Its consumers would retry an absent or refusing service for ever: a clear error instead.
    require_services(settings)
    app = build_app(
        Dashboard(dashboard_config(settings, domain or ["credit"]), read_metrics), token=token
    )
    _console.print(f"dashboard on [bold]http://{host}:{port}/[/bold] (Ctrl-C stops)")
    uvicorn.run(app, host=host, port=port, log_level="warning")


def register(root: typer.Typer) -> None:
    root.command("dashboard", help=" ".join((command.__doc__ or "").split()))(command)
