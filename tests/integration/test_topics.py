"""``crmrisk topics create`` against the real broker: creates what is missing, idempotently."""

import uuid

import pytest
from kafka import KafkaAdminClient

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
