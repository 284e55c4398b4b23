"""``crmrisk topics create | list``: the project's Kafka topics, keyed by customer id."""

from __future__ import annotations

import typer
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError
from rich.console import Console

from crmrisk.settings import KafkaSettings, Settings

__all__ = ["create_topics", "project_topics", "register"]

_console = Console()


def project_topics(kafka: KafkaSettings) -> list[str]:
    t = kafka.topics
    return [
        t.events,
        t.dead_letters,
        t.outcomes,
        t.scores,
        t.alerts,
        t.model_updates,
        t.score_requests,
    ]


def create_topics(
    kafka: KafkaSettings, partitions: int | None = None, replication: int | None = None
) -> dict[str, bool]:
    """Create every project topic that is missing; returns topic -> created (False: existed)."""
    partitions = partitions or kafka.topics.partitions
    replication = replication or kafka.topics.replication
    admin = KafkaAdminClient(**kafka.client_config(), client_id=f"{kafka.client_id}-admin")
    try:
        existing = set(admin.list_topics())
        outcome: dict[str, bool] = {}
        for name in project_topics(kafka):
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
    risk.model-updates and risk.score-requests where missing (existing ones are left alone)."""
    kafka = Settings().kafka
    for name, created in create_topics(kafka, partitions, replication).items():
        _console.print(f"{'[green]created[/green]' if created else 'exists '}  {name}")


@app.command("list")
def list_() -> None:
    """List the project's topics and their partition counts."""
    kafka = Settings().kafka
    admin = KafkaAdminClient(**kafka.client_config(), client_id=f"{kafka.client_id}-admin")
    try:
        names = project_topics(kafka)
        described = {d["topic"]: d for d in admin.describe_topics(names) if not d.get("error_code")}
    finally:
        admin.close()
    for name in names:
        d = described.get(name)
        partitions = len(d["partitions"]) if d else 0
        _console.print(f"{name:24s} {partitions or '-':>3} partitions")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="topics")
