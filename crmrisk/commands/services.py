"""``crmrisk up | down | status``: the local Kafka broker(s) and Redis run by ``deploy/``."""

from __future__ import annotations

import inspect

import typer
from rich.console import Console
from rich.table import Table

from crmrisk.settings import ServicesSettings, Settings
from deploy import (
    KafkaJarsError,
    KafkaStartError,
    Launcher,
    PortTakenError,
    RedisStartError,
    ServiceState,
)

__all__ = ["build_launcher", "register"]

_console = Console()


def build_launcher(services: ServicesSettings) -> Launcher:
    """The launcher configured by the ``services`` section of ``Settings``."""
    return Launcher(
        home=services.home,
        cache_dir=services.cache_dir,
        kafka_version=services.kafka_version,
        kafka_heap=services.kafka_heap,
        kafka_port=services.kafka_port,
        kafka_controller_port=services.kafka_controller_port,
        redis_port=services.redis_port,
        cluster_port=services.cluster_port,
        cluster_controller_port=services.cluster_controller_port,
        cluster_heap=services.cluster_heap,
        redis_cluster_port=services.redis_cluster_port,
    )


def _print_status(launcher: Launcher, states: list[ServiceState] | None = None) -> bool:
    """Print the status table; returns True when every listed service answers."""
    table = Table(title=f"crmrisk local services ({launcher.home})")
    for column in ("service", "endpoint", "run by", "pid", "answering", "ready in"):
        table.add_column(column, no_wrap=True)
    states = launcher.status() if states is None else states
    for state in states:
        table.add_row(
            state.name,
            state.endpoint,
            state.owner,
            str(state.pid) if state.pid is not None else "-",
            "[green]yes[/green]" if state.answering else "[red]no[/red]",
            f"{state.started_s:.1f} s" if state.started_s is not None else "-",
        )
    _console.print(table)
    return all(state.answering for state in states)


def up(
    cluster: bool = typer.Option(
        False,
        "--cluster",
        help="Also start the 3-broker KRaft cluster (replication 3, min.insync.replicas 2) "
        "on RISK_SERVICES__CLUSTER_PORT.. (default 19092-19094), for failover tests.",
    ),
    kafka: bool = typer.Option(True, "--kafka/--no-kafka", help="Start the single broker."),
    redis: bool = typer.Option(True, "--redis/--no-redis", help="Start redis-server."),
    redis_cluster: bool = typer.Option(
        False,
        "--redis-cluster",
        help="Also start a Redis Cluster of 3 masters + 3 replicas on "
        "RISK_SERVICES__REDIS_CLUSTER_PORT.. (default 17000-17005); point the workers at it "
        "with RISK_REDIS__URL=redis://127.0.0.1:17000/0 RISK_REDIS__CLUSTER=true "
        "RISK_REDIS__WAIT_REPLICAS=1.",
    ),
) -> None:
    """Start the local Kafka broker (KRaft, 127.0.0.1:9092) and Redis (127.0.0.1:6379).

    Idempotent: services already running are reused, a crashed broker restarts on its old data,
    and a Kafka or Redis that something else already runs on the port is used as it is. The
    first run fetches the Kafka jars from Maven Central into RISK_SERVICES__CACHE_DIR. Logs,
    data and pid files go to RISK_SERVICES__HOME (default ./var).
    """
    settings = Settings()
    launcher = build_launcher(settings.services)
    try:
        states = launcher.up(
            kafka=kafka,
            redis=redis,
            cluster=cluster,
            redis_cluster=redis_cluster,
            timeout_s=settings.services.start_timeout_s,
        )
    except (KafkaJarsError, KafkaStartError, PortTakenError, RedisStartError) as exc:
        _console.print(f"[red]crmrisk up failed:[/red] {exc}")
        raise typer.Exit(1) from None
    _print_status(launcher, states)


def down(
    cluster_only: bool = typer.Option(
        False,
        "--cluster-only",
        help="Stop only the clusters (Kafka's and Redis's), keep the broker and Redis.",
    ),
) -> None:
    """Stop the services that `crmrisk up` started (never ones somebody else runs).

    Each process gets SIGTERM and up to 30 s to shut down cleanly, then SIGKILL. Data stays in
    RISK_SERVICES__HOME, so the next `crmrisk up` continues where this one left off.
    """
    launcher = build_launcher(Settings().services)
    stopped = launcher.down(
        kafka=not cluster_only, redis=not cluster_only, cluster=True, redis_cluster=True
    )
    _console.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing of ours was running")


def status() -> None:
    """Show each local service: endpoint, who runs it, pid, and whether it answers.

    "Answering" means a real request succeeded (a Kafka metadata request, a Redis PING). Exits
    with status 1 when a listed service does not answer.
    """
    if not _print_status(build_launcher(Settings().services)):
        raise typer.Exit(1)


def _help(command: object) -> str:
    """The docstring with each paragraph on one line: Typer's rich help keeps line breaks."""
    text = inspect.getdoc(command) or ""
    return "\n\n".join(" ".join(paragraph.split()) for paragraph in text.split("\n\n"))


def register(app: typer.Typer) -> None:
    """Add ``up``, ``down`` and ``status`` to the ``crmrisk`` CLI."""
    for command in (up, down, status):
        app.command(command.__name__, help=_help(command))(command)
