"""The producers against the real broker: keyed like the Java client, errors surface on flush."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.partitioner import DefaultPartitioner
from kafka import KafkaConsumer, TopicPartition

from crmrisk.stream.kafka_producer import BatchProducer, FastProducer

pytestmark = pytest.mark.integration


def _read(bootstrap: str, topic: str, partitions: int, expected: int) -> list:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), enable_auto_commit=False)
    consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
    consumer.seek_to_beginning()
    got: list = []
    for _ in range(50):
        for batch in consumer.poll(timeout_ms=200).values():
            got.extend(batch)
        if len(got) >= expected:
            break
    consumer.close()
    return got


@pytest.mark.parametrize("make", [FastProducer, BatchProducer])
def test_producer__keys_go_where_the_java_partitioner_puts_them(make, settings, new_topic):
    topic = new_topic(partitions=4, prefix="it-producer")
    keys = [f"customer-{i}".encode() for i in range(60)]

    async def send() -> None:
        producer = make(settings.kafka.client_config(), "test-producer")
        await producer.start()
        await producer.send_many(topic, [(k, b"v:" + k) for k in keys])
        await producer.flush()
        await producer.stop()

    asyncio.run(send())
    got = _read(settings.kafka.bootstrap_servers, topic, 4, len(keys))
    assert sorted(r.key for r in got) == sorted(keys)  # each once
    partitioner = DefaultPartitioner()
    for record in got:
        assert record.partition == partitioner(record.key, [0, 1, 2, 3], [0, 1, 2, 3])
        assert record.value == b"v:" + record.key


def test_fast_producer__a_message_over_the_limit_is_a_clear_error(settings, new_topic):
    topic = new_topic(partitions=1, prefix="it-producer")

    async def send() -> None:
        producer = FastProducer(settings.kafka.client_config(), "test-producer")
        try:
            await producer.send_many(topic, [(b"k", b"x" * (2 * 1024 * 1024))])
        finally:
            await producer.stop()

    with pytest.raises(ValueError, match="does not fit"):
        asyncio.run(send())
