"""The consumer side of Kafka (aiokafka): the pipeline's record source and the history reader.

Chosen by numbers (``benchmarks/kafka_clients.py``: the three Python clients side by side on
one backlog, CPU per message): consuming and JSON-decoding, aiokafka's ``getmany`` and
confluent-kafka's ``consume`` cost about the same (~6 us a message here) and kafka-python ~7x
more; aiokafka's asyncio consumer is the one the pipeline can await. faust runs on aiokafka and
adds per-message stream machinery on top.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.structs import TopicPartition

from crmrisk.stream.batching import DynamicBatcher
from crmrisk.stream.kafka_options import aiokafka_options

__all__ = ["KafkaHistory", "KafkaSource", "consumer_lag", "getmany_source", "new_consumer"]

log = logging.getLogger(__name__)


def new_consumer(
    client: Mapping[str, Any],
    topics: Sequence[str],
    group_id: str | None,
    client_id: str,
    session_timeout_ms: int | None = None,
) -> AIOKafkaConsumer:
    """A consumer that never auto-commits and starts from the earliest offset of a new group.

    ``topics`` empty: not subscribed yet (``KafkaSource.subscribe`` adds its listener).
    ``session_timeout_ms`` (``kafka.session_timeout_ms``) matters to group members only; a
    reader without a group (``group_id`` None) leaves it out."""
    timing = {}
    if session_timeout_ms is not None:
        timing = {
            "session_timeout_ms": session_timeout_ms,
            "heartbeat_interval_ms": max(session_timeout_ms // 3, 100),
        }
    return AIOKafkaConsumer(
        *topics,
        **aiokafka_options(client),
        group_id=group_id,
        client_id=client_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_wait_ms=50,
        **timing,
    )


def getmany_source(consumer: AIOKafkaConsumer):
    """Adapts ``getmany`` to the ``DynamicBatcher`` source signature."""

    async def source(timeout_s: float, max_records: int) -> list:
        polled = await consumer.getmany(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        return [record for records in polled.values() for record in records]

    return source


async def consumer_lag(consumer: AIOKafkaConsumer) -> int:
    """Messages between the consumer's positions and the high watermarks it has seen."""
    total = 0
    for tp in consumer.assignment():
        high = consumer.highwater(tp)
        if high is not None:
            total += max(high - await consumer.position(tp), 0)
    return total


class KafkaSource:
    """The pipeline's record source: one topic as a group member; dynamic batches, the
    assignment (with a listener for rebalances), per-partition commits and rewinds, lag."""

    def __init__(
        self, consumer: AIOKafkaConsumer, topic: str, max_batch_size: int, max_delay_ms: float
    ) -> None:
        self.consumer = consumer
        self.topic = topic
        self._batcher = DynamicBatcher(getmany_source(consumer), max_batch_size, max_delay_ms)
        self._owned: set[int] = set()

    def subscribe(self, on_revoked, on_assigned) -> None:
        """Subscribe to the topic; ``await on_revoked(partitions)`` runs before a rebalance
        takes partitions away (their batches in flight are completed and committed first),
        ``on_assigned(partitions)`` after new ones are given."""
        source = self

        class Listener(ConsumerRebalanceListener):
            async def on_partitions_revoked(self, revoked) -> None:
                gone = [tp.partition for tp in revoked if tp.topic == source.topic]
                source._owned.difference_update(gone)
                if gone:
                    await on_revoked(gone)

            async def on_partitions_assigned(self, assigned) -> None:
                given = [tp.partition for tp in assigned if tp.topic == source.topic]
                source._owned = set(given)
                on_assigned(given)

        self.consumer.subscribe([self.topic], listener=Listener())

    async def next_batch(self, idle_timeout_s: float) -> list:
        return await self._batcher.next_batch(idle_timeout_s)

    def owns(self, partition: int) -> bool:
        return partition in self._owned

    def generation(self) -> int:
        """The group generation of the current assignment (aiokafka keeps it on its
        coordinator, with no public accessor)."""
        coordinator = getattr(self.consumer, "_coordinator", None)
        return int(getattr(coordinator, "generation", -1) or 0)

    async def commit(self, offsets: dict[int, int]) -> bool:
        """Commit partition -> next offset. False when a rebalance took the partitions away
        first: their records go to the new owner, whose claim sees what the state holds."""
        try:
            await self.consumer.commit(
                {TopicPartition(self.topic, p): o for p, o in offsets.items()}
            )
        except (CommitFailedError, IllegalStateError) as exc:
            log.warning("commit of %d partition(s) lost to a rebalance: %s", len(offsets), exc)
            return False
        return True

    def rewind(self, partition: int, offset: int) -> None:
        try:
            self.consumer.seek(TopicPartition(self.topic, partition), offset)
        except IllegalStateError:  # no longer assigned: its next owner starts from the commit
            log.info("%s/%d: not assigned any more, not rewound", self.topic, partition)

    async def lag(self) -> int:
        return await consumer_lag(self.consumer)


class KafkaHistory:
    """Reads a partition's past records for a state rebuild, on a consumer of its own (no group).

    One consumer serves every ``read`` until ``close``; it is made on first use.
    """

    def __init__(self, client: Mapping[str, Any], client_id: str, chunk: int = 2000) -> None:
        self._options = aiokafka_options(client)
        self._client_id = client_id
        self._chunk = chunk
        self._consumer: AIOKafkaConsumer | None = None

    async def _open(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                **self._options,
                group_id=None,
                client_id=self._client_id,
                enable_auto_commit=False,
                max_partition_fetch_bytes=4 * 1024 * 1024,
                fetch_max_wait_ms=50,  # the end of a partition: don't idle 500 ms there
            )
            await consumer.start()
            self._consumer = consumer
        return self._consumer

    async def beginning(self, topic: str, partition: int) -> int:
        consumer = await self._open()
        tp = TopicPartition(topic, partition)
        return (await consumer.beginning_offsets([tp]))[tp]

    async def end(self, topic: str, partition: int) -> int:
        consumer = await self._open()
        tp = TopicPartition(topic, partition)
        return (await consumer.end_offsets([tp]))[tp]

    async def read(self, topic: str, partition: int, start: int, end: int):
        """Chunks of the records at offsets [start, end), in order."""
        consumer = await self._open()
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, start)
        high = await self.end(topic, partition)
        end = min(end, high)
        while await consumer.position(tp) < end:
            polled = await consumer.getmany(tp, timeout_ms=1000, max_records=self._chunk)
            chunk = [r for r in polled.get(tp, []) if r.offset < end]
            if chunk:
                yield chunk

    async def close(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()
