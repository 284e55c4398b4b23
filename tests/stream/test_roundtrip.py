"""Schema-validated events through the real broker into the real Redis, and back."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from crmrisk.stream.events import CustomerEvent, InvalidEvent, parse_event

pytestmark = pytest.mark.integration


def _events(customers: int, per_customer: int) -> list[CustomerEvent]:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    return [
        CustomerEvent(
            event_id=f"c{c}-e{i}",
            customer_id=f"c{c}",
            event_time=start + timedelta(days=i, hours=c),
            domain="credit",
            kind="statement",
            fields={"bill": 100.0 * i + c, "paid": i % 2 == 0, "note": f"#{i}"},
        )
        for i in range(per_customer)
        for c in range(customers)
    ]


def _produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap.split(","), acks="all", linger_ms=5)
    try:
        for key, value in records:
            producer.send(topic, key=key, value=value)
        producer.flush(timeout=30)
    finally:
        producer.close()


def _consume(bootstrap: str, topic: str, expected: int, timeout_s: float = 30.0) -> list:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap.split(","), group_id=None, enable_auto_commit=False
    )
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        records: list = []
        deadline = time.monotonic() + timeout_s
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def test_roundtrip__events_survive_kafka_and_redis(
    kafka_bootstrap, new_topic, redis_client, redis_prefix
):
    topic = new_topic(partitions=3)
    sent = _events(customers=5, per_customer=6)
    _produce(kafka_bootstrap, topic, [(event.key, event.to_bytes()) for event in sent])

    records = _consume(kafka_bootstrap, topic, expected=len(sent))

    assert len(records) == len(sent)
    partitions_of: dict[str, set[int]] = defaultdict(set)
    for record in records:
        event = parse_event(record.value)
        assert record.key == event.key
        partitions_of[event.customer_id].add(record.partition)
        redis_client.rpush(f"{redis_prefix}events:{event.customer_id}", record.value)
    # Keyed by customer id: each customer's events sit on exactly one partition.
    assert all(len(p) == 1 for p in partitions_of.values())
    for customer in {event.customer_id for event in sent}:
        stored = redis_client.lrange(f"{redis_prefix}events:{customer}", 0, -1)
        read_back = [parse_event(raw) for raw in stored]
        # One partition keeps the produced order, so Redis holds them in event order too.
        assert read_back == [event for event in sent if event.customer_id == customer]


@pytest.mark.parametrize(
    ("broken", "field", "reason"),
    [
        ({"customer_id": ""}, "customer_id", "invalid_fields"),
        ({"event_time": "2024-01-01T00:00:00"}, "event_time", "invalid_fields"),
        ({"fields": {"bill": [1, 2]}}, "fields.bill", "invalid_fields"),
        ({"schema_version": 7}, "schema_version", "unsupported_schema"),
    ],
)
def test_roundtrip__malformed_event_names_the_field(
    kafka_bootstrap, new_topic, broken, field, reason
):
    topic = new_topic()
    document = json.loads(_events(customers=1, per_customer=1)[0].to_bytes())
    document.update(broken)
    _produce(kafka_bootstrap, topic, [(b"c0", json.dumps(document).encode())])

    (record,) = _consume(kafka_bootstrap, topic, expected=1)

    with pytest.raises(InvalidEvent) as caught:
        parse_event(record.value)
    assert caught.value.reason == reason
    assert field in str(caught.value)
