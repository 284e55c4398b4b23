"""``crmrisk up | down | status``: the local Kafka broker(s) and Redis run by ``deploy/``.

The services are secured when the client settings say so: Kafka with SASL_SSL when
``RISK_KAFKA__SECURITY_PROTOCOL=SASL_SSL`` (SCRAM-SHA-512, the user and password of
``RISK_KAFKA__SASL_*``), Redis with TLS and an ACL user when ``RISK_REDIS__URL`` is ``rediss://``
(``RISK_REDIS__USERNAME`` / ``PASSWORD``). One ``.env`` then configures both sides.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import typer
from redis.connection import parse_url
from rich.console import Console
from rich.table import Table

from crmrisk.commands.context import current_settings
from crmrisk.deploy import (
    CertificateError,
    KafkaJarsError,
    KafkaStartError,
    Launcher,
    Login,
    PortTakenError,
    RedisStartError,
    ServiceState,
)
from crmrisk.errors import UserError
from crmrisk.settings import KafkaSettings, RedisSettings, ServicesSettings, Settings

__all__ = ["build_launcher", "kafka_login", "launcher_for", "redis_login", "register"]

_console = Console()


def kafka_login(kafka: KafkaSettings) -> Login | None:
    """The SCRAM user a local broker must admit, or None for a plain broker."""
    if kafka.security_protocol == "PLAINTEXT":
        return None
    if not (
        kafka.security_protocol == "SASL_SSL"
        and kafka.sasl_mechanism == "SCRAM-SHA-512"
        and kafka.sasl_username
        and kafka.sasl_password
    ):
        raise UserError(
            "the local launcher runs Kafka with PLAINTEXT, or with SASL_SSL and SCRAM-SHA-512: "
            "set RISK_KAFKA__SASL_MECHANISM=SCRAM-SHA-512, RISK_KAFKA__SASL_USERNAME and "
            "RISK_KAFKA__SASL_PASSWORD"
        )
    return Login(kafka.sasl_username, kafka.sasl_password.get_secret_value())


def redis_login(redis: RedisSettings) -> Login | None:
    """The ACL user a local Redis must admit (with TLS), or None for a plain Redis."""
    in_url = parse_url(redis.url)
    user = redis.username or in_url.get("username")
    password = redis.password.get_secret_value() if redis.password else in_url.get("password")
    if not redis.url.startswith("rediss://"):
        if user or password:
            raise UserError(
                "the local launcher runs Redis without a password (redis://), or with TLS and "
                "an ACL user (rediss://): use a rediss:// RISK_REDIS__URL, or drop the password"
            )
        return None
    if not (user and password):
        raise UserError(
            "a local Redis with TLS (rediss://) admits one ACL user: set RISK_REDIS__USERNAME "
            "and RISK_REDIS__PASSWORD"
        )
    return Login(user, password)


def build_launcher(
    services: ServicesSettings, kafka: Login | None = None, redis: Login | None = None
) -> Launcher:
    """The launcher configured by the ``services`` section of ``Settings``; secured services
    admit the ``kafka`` and ``redis`` users (``kafka_login``, ``redis_login``)."""
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
        kafka_login=kafka,
        redis_login=redis,
    )


def launcher_for(settings: Settings) -> Launcher:
    return build_launcher(
        settings.services, kafka_login(settings.kafka), redis_login(settings.redis)
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

    Secured when the settings say so: Kafka with SASL_SSL (SCRAM-SHA-512) for
    RISK_KAFKA__SECURITY_PROTOCOL=SASL_SSL, Redis with TLS and an ACL user for a rediss://
    RISK_REDIS__URL; the users are those of RISK_KAFKA__SASL_USERNAME and RISK_REDIS__USERNAME,
    and clients trust the CA made in RISK_SERVICES__HOME/tls/ca.pem.

    Idempotent: services already running are reused, a crashed broker restarts on its old data,
    and a Kafka or Redis that something else already runs on the port is used as it is. The
    first run fetches the Kafka jars from Maven Central into RISK_SERVICES__CACHE_DIR. Logs,
    data and pid files go to RISK_SERVICES__HOME (default ./var).
    """
    settings = current_settings()
    launcher = launcher_for(settings)
    try:
        states = launcher.up(
            kafka=kafka,
            redis=redis,
            cluster=cluster,
            redis_cluster=redis_cluster,
            timeout_s=settings.services.start_timeout_s,
        )
    except (
        CertificateError,
        KafkaJarsError,
        KafkaStartError,
        PortTakenError,
        RedisStartError,
    ) as exc:
        _console.print(f"[red]crmrisk up failed:[/red] {exc}")
        raise typer.Exit(1) from None
    _print_status(launcher, states)
    _trust_hint(settings, launcher)


def _trust_hint(settings: Settings, launcher: Launcher) -> None:
    """Name the CA to trust when a secured service runs and the settings trust another."""
    ca = launcher.certificates.ca_pem.resolve()

    def trusted(path: Path | None) -> bool:
        return path is not None and path.resolve() == ca

    wanted = []
    if launcher.kafka.security and not trusted(settings.kafka.ssl_cafile):
        wanted.append(f"RISK_KAFKA__SSL_CAFILE={ca}")
    if launcher.redis.security and not trusted(settings.redis.ssl_ca_certs):
        wanted.append(f"RISK_REDIS__SSL_CA_CERTS={ca}")
    if wanted:
        _console.print(f"clients must trust the local CA: set {' '.join(wanted)}")


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
    launcher = launcher_for(current_settings())
    stopped = launcher.down(
        kafka=not cluster_only, redis=not cluster_only, cluster=True, redis_cluster=True
    )
    _console.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing of ours was running")


def status() -> None:
    """Show each local service: endpoint, who runs it, pid, and whether it answers.

    "Answering" means a real request succeeded (a Kafka metadata request, a Redis PING). Exits
    with status 1 when a listed service does not answer.
    """
    if not _print_status(launcher_for(current_settings())):
        raise typer.Exit(1)


def _help(command: object) -> str:
    """The docstring with each paragraph on one line: Typer's rich help keeps line breaks."""
    text = inspect.getdoc(command) or ""
    return "\n\n".join(" ".join(paragraph.split()) for paragraph in text.split("\n\n"))


def register(app: typer.Typer) -> None:
    """Add ``up``, ``down`` and ``status`` to the ``crmrisk`` CLI."""
    for command in (up, down, status):
        app.command(command.__name__, help=_help(command))(command)
