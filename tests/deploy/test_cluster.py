"""The 3-broker KRaft cluster: it starts, and a replication-3 topic survives a killed leader."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError

from crmrisk.deploy import Launcher, kafka_broker_count

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _partition(admin: KafkaAdminClient, topic: str) -> dict | None:
    """Partition 0 as the answering broker knows it (None until its metadata has it)."""
    try:
        (described,) = admin.describe_topics([topic])
    except KafkaError:  # the killed broker may be the one asked; the next try asks another
        return None
    partitions = described.get("partitions") or []
    return partitions[0] if partitions else None


def _wait(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout_s:.0f} s")


def _produce(producer: KafkaProducer, topic: str, values: list[bytes]) -> None:
    futures = [producer.send(topic, key=b"customer-1", value=v) for v in values]
    for future in futures:
        future.get(timeout=60)  # acks=all: every one is on two replicas at least


def test_cluster__replicated_topic_survives_a_killed_leader(launcher: Launcher):
    states = {s.name: s for s in launcher.up(kafka=False, redis=False, cluster=True)}
    nodes = [s for name, s in states.items() if name.startswith("kafka-cluster node")]
    assert len(nodes) == 3 and all(s.answering and s.pid for s in nodes)
    assert launcher.kafka.port not in {m.port for m in launcher.cluster.members}
    servers = launcher.cluster.bootstrap_servers
    assert kafka_broker_count(servers) == 3

    topic = "failover"
    admin = KafkaAdminClient(bootstrap_servers=servers.split(","))
    created = admin.create_topics([NewTopic(topic, 1, 3)])["topics"][0]
    assert created["configs"]["min.insync.replicas"]["value"] == "2"
    partition = _wait(
        lambda: (p := _partition(admin, topic)) and len(p["isr_nodes"]) == 3 and p,
        30,
        "three in-sync replicas",
    )

    producer = KafkaProducer(
        bootstrap_servers=servers.split(","), acks="all", linger_ms=5, request_timeout_ms=10_000
    )
    before = [f"before-{i}".encode() for i in range(200)]
    _produce(producer, topic, before)

    leader = partition["leader_id"]
    killed = launcher.cluster.members[leader - 1]
    assert killed.process.kill()  # SIGKILL the partition leader
    _wait(
        lambda: (p := _partition(admin, topic)) and p["leader_id"] not in (-1, leader) and p,
        60,
        "a new leader",
    )

    after = [f"after-{i}".encode() for i in range(200)]
    _produce(producer, topic, after)  # acks=all still works: 2 replicas >= min.insync 2
    producer.close()
    admin.close()

    survivors = [m.address for m in launcher.cluster.members if m is not killed]
    consumer = KafkaConsumer(bootstrap_servers=survivors, group_id=None)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    received: list[bytes] = []
    deadline = time.monotonic() + 60
    while len(received) < len(before) + len(after) and time.monotonic() < deadline:
        received += [r.value for batch in consumer.poll(timeout_ms=500).values() for r in batch]
    consumer.close()

    # The idempotent producer writes each record once; none is lost, order is kept.
    assert received == before + after
