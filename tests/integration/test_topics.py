"""``crmrisk topics create | list`` against the real broker: creates what is missing,
idempotently; lists each project topic's partitions."""

import uuid

import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from typer.testing import CliRunner

from crmrisk.cli import app
from crmrisk.commands.topics import create_topics, project_topics
from crmrisk.settings import KafkaSettings

pytestmark = pytest.mark.integration


def test_create_topics__creates_missing_ones_then_leaves_them(kafka_bootstrap):
    tag = uuid.uuid4().hex[:8]
    names = [
        "events",
        "dead_letters",
        "outcomes",
        "scores",
        "alerts",
        "model_updates",
        "score_requests",
    ]
    kafka = KafkaSettings(
        bootstrap_servers=kafka_bootstrap,
        topics={name: f"it-topics-{name}-{tag}" for name in names} | {"partitions": 3},
    )
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap.split(","), client_id="tests")
    try:
        first = create_topics(kafka)
        second = create_topics(kafka)
        assert first == dict.fromkeys(project_topics(kafka), True)
        assert second == dict.fromkeys(project_topics(kafka), False)
        described = admin.describe_topics(project_topics(kafka))
        assert {len(d["partitions"]) for d in described} == {3}
    finally:
        admin.delete_topics(project_topics(kafka))
        admin.close()


def test_topics_list__partitions_of_each_project_topic_dash_when_missing(kafka_bootstrap):
    tag = uuid.uuid4().hex[:8]
    names = {
        "events": f"it-list-events-{tag}",
        "dead_letters": f"it-list-dlq-{tag}",
        "outcomes": f"it-list-outcomes-{tag}",
        "scores": f"it-list-scores-{tag}",
        "alerts": f"it-list-alerts-{tag}",
        "model_updates": f"it-list-updates-{tag}",
        "score_requests": f"it-list-requests-{tag}",
        "shadow_scores": f"it-list-shadow-{tag}",
    }
    env = {"RISK_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap} | {
        f"RISK_KAFKA__TOPICS__{name.upper()}": topic for name, topic in names.items()
    }
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap.split(","), client_id="tests")
    created = [names["events"], names["scores"]]
    try:
        admin.create_topics([NewTopic(names["events"], 3, 1), NewTopic(names["scores"], 2, 1)])
        result = CliRunner().invoke(app, ["topics", "list"], env=env)
        assert result.exit_code == 0, result.output
        counts = {line.split()[0]: line.split()[1] for line in result.output.splitlines()}
        assert counts == {topic: "-" for topic in names.values()} | {
            names["events"]: "3",
            names["scores"]: "2",
        }
    finally:
        admin.delete_topics(created)
        admin.close()
