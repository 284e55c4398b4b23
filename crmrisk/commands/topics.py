"""``crmrisk topics create | list``: the project's Kafka topics, keyed by customer id."""

from __future__ import annotations

import typer
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError
from rich.console import Console

from crmrisk.commands.context import current_settings
from crmrisk.errors import require_services
from crmrisk.settings import KafkaSettings
from crmrisk.wiring.clients import quiet_kafka_clients

__all__ = ["create_topics", "partition_counts", "project_topics", "register"]

_console = Console()


def project_topics(kafka: KafkaSettings) -> list[str]:
    """Every project topic's name (``TopicSettings.roles``)."""
    return list(kafka.topics.by_role().values())


def create_topics(
    kafka: KafkaSettings,
    partitions: int | None = None,
    replication: int | None = None,
    names: list[str] | None = None,
) -> dict[str, bool]:
    """Create every project topic (or those ``names``) that is missing; returns topic ->
    created (False: existed)."""
    partitions = partitions or kafka.topics.partitions
    replication = replication or kafka.topics.replication
    admin = KafkaAdminClient(**kafka.client_config(), client_id=f"{kafka.client_id}-admin")
    try:
        existing = set(admin.list_topics())
        outcome: dict[str, bool] = {}
        for name in names or project_topics(kafka):
            if name in existing:
                outcome[name] = False
                continue
            try:
                admin.create_topics([NewTopic(name, partitions, replication)])
                outcome[name] = True
            except TopicAlreadyExistsError:
                outcome[name] = False
        return outcome
    finally:
        admin.close()


app = typer.Typer(help="The project's Kafka topics.", no_args_is_help=True)


@app.command("create")
def create(
    partitions: int = typer.Option(
        None, help="Partitions (default: RISK_KAFKA__TOPICS__PARTITIONS)."
    ),
    replication: int = typer.Option(
        None, help="Replication factor (default: RISK_KAFKA__TOPICS__REPLICATION)."
    ),
) -> None:
    """Create crm.events, crm.events.dlq, crm.outcomes, risk.scores, risk.alerts,
    risk.scores.shadow, risk.model-updates and risk.score-requests where missing (existing
    ones are left alone)."""
    quiet_kafka_clients()
    settings = current_settings()
    require_services(settings, redis=False)
    for name, created in create_topics(settings.kafka, partitions, replication).items():
        _console.print(f"{'[green]created[/green]' if created else 'exists '}  {name}")


def partition_counts(kafka: KafkaSettings) -> dict[str, int]:
    """Partitions of each project topic; 0 for one that does not exist."""
    admin = KafkaAdminClient(**kafka.client_config(), client_id=f"{kafka.client_id}-admin")
    try:
        names = project_topics(kafka)
        existing = set(admin.list_topics())
        # kafka-python 3 names a described topic's key "name" (2.x: "topic").
        described = {
            d["name"]: d for d in admin.describe_topics([n for n in names if n in existing])
        }
    finally:
        admin.close()
    return {name: len(described[name]["partitions"]) if name in described else 0 for name in names}


@app.command("list")
def list_() -> None:
    """List the project's topics and their partition counts ("-": missing)."""
    quiet_kafka_clients()
    settings = current_settings()
    # kafka-python's admin would wait out a refused login as "no broker": name it instead.
    require_services(settings, redis=False)
    for name, partitions in partition_counts(settings.kafka).items():
        _console.print(f"{name:24s} {partitions or '-':>3} partitions")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="topics")
