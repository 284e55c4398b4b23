"""Kafka plumbing: the consumer (aiokafka), the producer (confluent-kafka), commits and lag.

Chosen by numbers (``benchmarks/kafka_clients.py``: the three Python clients side by side on
one backlog, CPU per message): consuming and JSON-decoding, aiokafka's ``getmany`` and
confluent-kafka's ``consume`` cost about the same (~6 us a message here) and kafka-python ~7x
more; producing (idempotent, acks=all), confluent-kafka (librdkafka, C) costs ~2 us a message,
aiokafka's batch API ~7 us and kafka-python ~55 us. So the workers consume with aiokafka, whose
asyncio consumer the pipeline awaits, and produce with confluent-kafka, whose ``produce`` only
queues (its own threads send) and whose flush runs off the event loop. faust runs on aiokafka
and adds per-message stream machinery on top.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import TopicPartition
from confluent_kafka import KafkaError, KafkaException, Producer

__all__ = [
    "BatchProducer",
    "DeliveryFailed",
    "FastProducer",
    "KafkaHistory",
    "KafkaSource",
    "commit_batch",
    "consumer_lag",
    "getmany_source",
    "librdkafka_options",
    "new_consumer",
]

log = logging.getLogger(__name__)


class DeliveryFailed(RuntimeError):
    """Kafka refused or lost messages for good: they must be sent again (not just flushed)."""


_SECURITY_KEYS = (
    "security_protocol",
    "sasl_mechanism",
    "sasl_plain_username",
    "sasl_plain_password",
)


def _client_options(client: Mapping[str, Any]) -> dict[str, Any]:
    """``KafkaSettings.client_config()`` mapped onto aiokafka's keyword names."""
    options = {"bootstrap_servers": client["bootstrap_servers"]}
    options.update({k: client[k] for k in _SECURITY_KEYS if client.get(k) is not None})
    # aiokafka refuses SSL and SASL_SSL without a context; no CA file means the system's CAs.
    tls = str(client.get("security_protocol", "")).endswith("SSL")
    if tls or any(client.get(k) for k in ("ssl_cafile", "ssl_certfile", "ssl_keyfile")):
        from aiokafka.helpers import create_ssl_context

        options["ssl_context"] = create_ssl_context(
            cafile=client.get("ssl_cafile"),
            certfile=client.get("ssl_certfile"),
            keyfile=client.get("ssl_keyfile"),
        )
    return options


def new_consumer(
    client: Mapping[str, Any],
    topics: Sequence[str],
    group_id: str,
    client_id: str,
    session_timeout_ms: int = 10_000,
) -> AIOKafkaConsumer:
    """A consumer that never auto-commits and starts from the earliest offset of a new group.

    ``topics`` empty: not subscribed yet (``KafkaSource.subscribe`` adds its listener)."""
    return AIOKafkaConsumer(
        *topics,
        **_client_options(client),
        group_id=group_id,
        client_id=client_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=max(session_timeout_ms // 3, 100),
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_wait_ms=50,
    )


def getmany_source(consumer: AIOKafkaConsumer):
    """Adapts ``getmany`` to the ``DynamicBatcher`` source signature."""

    async def source(timeout_s: float, max_records: int) -> list:
        polled = await consumer.getmany(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        return [record for records in polled.values() for record in records]

    return source


async def commit_batch(consumer: AIOKafkaConsumer, records: Iterable[Any]) -> bool:
    """Commit, per partition, the offset after the last record of the batch.

    Returns False when a rebalance took the partitions away first: the batch is then
    redelivered to their new owner, which the idempotent state absorbs (its scores are
    re-published: at-least-once), so the worker carries on instead of crashing.
    """
    last: dict[TopicPartition, int] = {}
    for r in records:
        tp = TopicPartition(r.topic, r.partition)
        last[tp] = max(last.get(tp, -1), r.offset)
    try:
        await consumer.commit({tp: offset + 1 for tp, offset in last.items()})
    except (CommitFailedError, IllegalStateError) as exc:
        log.warning("commit of %d partition(s) lost to a rebalance: %s", len(last), exc)
        return False
    return True


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
        from stream.batching import DynamicBatcher

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
        self._options = _client_options(client)
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


class BatchProducer:
    """Produces many messages through aiokafka's batch API, keyed like the default partitioner.

    ``send_many`` returns at once; ``flush`` waits until Kafka acknowledged everything sent.
    The producer is idempotent with ``acks=all``: retries never duplicate a record.
    """

    def __init__(self, client: Mapping[str, Any], client_id: str, linger_ms: int = 5) -> None:
        self._producer = AIOKafkaProducer(
            **_client_options(client),
            client_id=client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=linger_ms,
            max_batch_size=1024 * 1024,
        )
        self._partitioner = DefaultPartitioner()
        self._partitions: dict[str, list[int]] = {}
        self._pending: list[asyncio.Future] = []

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self.flush()
        await self._producer.stop()

    async def _partitions_of(self, topic: str) -> list[int]:
        if topic not in self._partitions:
            self._partitions[topic] = sorted(await self._producer.partitions_for(topic))
        return self._partitions[topic]

    async def send_many(
        self,
        topic: str,
        messages: Iterable[tuple[bytes | None, bytes]],
        timestamp_ms: int | None = None,
    ) -> int:
        """Queue (key, value) pairs; a None key goes to partition 0. Returns how many."""
        partitions = await self._partitions_of(topic)
        batches: dict[int, Any] = {}
        count = 0
        for key, value in messages:
            partition = (
                partitions[0] if key is None else self._partitioner(key, partitions, partitions)
            )
            batch = batches.get(partition)
            if batch is None:
                batch = batches[partition] = self._producer.create_batch()
            if batch.append(key=key, value=value, timestamp=timestamp_ms) is None:
                self._pending.append(
                    await self._producer.send_batch(batch, topic, partition=partition)
                )
                batch = batches[partition] = self._producer.create_batch()
                if batch.append(key=key, value=value, timestamp=timestamp_ms) is None:
                    raise ValueError(f"a message of {len(value)} bytes does not fit in a batch")
            count += 1
        for partition, batch in batches.items():
            if batch.record_count():
                self._pending.append(
                    await self._producer.send_batch(batch, topic, partition=partition)
                )
        return count

    async def flush(self) -> None:
        """Wait for every queued batch to be acknowledged (raises if one failed)."""
        pending, self._pending = self._pending, []
        if pending:
            try:
                await asyncio.gather(*pending)
            except Exception as exc:  # the batches are gone with their futures: send again
                raise DeliveryFailed(f"a batch was not delivered: {exc!r}") from exc


def librdkafka_options(client: Mapping[str, Any]) -> dict[str, Any]:
    """``KafkaSettings.client_config()`` mapped onto librdkafka's property names."""
    servers = client["bootstrap_servers"]
    options: dict[str, Any] = {
        "bootstrap.servers": servers if isinstance(servers, str) else ",".join(servers),
        "security.protocol": client.get("security_protocol") or "PLAINTEXT",
    }
    names = {
        "sasl_mechanism": "sasl.mechanism",
        "sasl_plain_username": "sasl.username",
        "sasl_plain_password": "sasl.password",
        "ssl_cafile": "ssl.ca.location",
        "ssl_certfile": "ssl.certificate.location",
        "ssl_keyfile": "ssl.key.location",
    }
    options.update({names[k]: client[k] for k in names if client.get(k) is not None})
    return options


class FastProducer:
    """``BatchProducer``'s interface on confluent-kafka: idempotent, ``acks=all``, keyed like
    the Java client (murmur2), so a customer's messages land where every other client puts them.

    ``send_many`` queues (librdkafka's threads send); ``flush`` waits, off the event loop, until
    everything queued is acknowledged and raises the first delivery error, if any.
    """

    def __init__(self, client: Mapping[str, Any], client_id: str, linger_ms: int = 5) -> None:
        self._producer = Producer(
            {
                **librdkafka_options(client),
                "client.id": client_id,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": linger_ms,
                "batch.size": 1024 * 1024,
                "partitioner": "murmur2_random",
            }
        )
        self._errors: list[str] = []
        self._polling = threading.Event()
        self._poller: threading.Thread | None = None

    async def start(self) -> None:
        """Serve delivery callbacks from a thread of their own (``send``'s acknowledgements
        arrive while the loop scores the next batch)."""
        if self._poller is None:
            self._polling.set()
            self._poller = threading.Thread(target=self._poll, name="producer-poll", daemon=True)
            self._poller.start()

    def _poll(self) -> None:
        while self._polling.is_set():
            self._producer.poll(0.05)

    async def stop(self) -> None:
        """Flush, then let librdkafka go: a Producer lives (and reconnects, and logs about it)
        until it is deallocated, e.g. after the demo stopped the broker it started."""
        await self.flush()
        self._polling.clear()
        if self._poller is not None:
            await asyncio.to_thread(self._poller.join)
            self._poller = None
        self._producer = None

    def send(self, topic: str, messages: Iterable[tuple[bytes | None, bytes]], delivery) -> int:
        """Queue (key, value) messages whose acknowledgements count down ``delivery``
        (``stream.ports.Delivery``); a lost one is kept there for ``resend``."""
        messages = list(messages)
        delivery.sent(len(messages))

        def settled(error: Any, message: Any) -> None:
            if error is None:
                delivery.acked()
            else:
                delivery.acked((message.topic(), message.key(), message.value()), str(error))

        produce = self._producer.produce
        for i, (key, value) in enumerate(messages):
            while True:
                try:
                    produce(topic, value, key, on_delivery=settled)
                    break
                except BufferError:  # the local queue is full: let it drain
                    self._producer.poll(0.05)
                except KafkaException as exc:
                    for _ in messages[i:]:
                        delivery.acked()
                    if exc.args[0].code() == KafkaError.MSG_SIZE_TOO_LARGE:
                        raise ValueError(
                            f"a message of {len(value)} bytes does not fit the producer's limit"
                        ) from None
                    raise
        return len(messages)

    async def delivered(self, delivery, timeout_s: float = 60.0) -> None:
        """Until ``delivery`` settled; ``DeliveryFailed`` when messages were lost."""
        await delivery.wait(timeout_s)
        if delivery.failed:
            raise DeliveryFailed(
                f"{len(delivery.failed)} message(s) not delivered, first: {delivery.errors[0]}"
            )

    def resend(self, delivery) -> int:
        failed, delivery.failed, delivery.errors = delivery.failed, [], []
        by_topic: dict[str, list] = {}
        for topic, key, value in failed:
            by_topic.setdefault(topic, []).append((key, value))
        return sum(self.send(topic, pairs, delivery) for topic, pairs in by_topic.items())

    def _delivered(self, error: Any, message: Any) -> None:
        if error is not None:
            self._errors.append(f"{message.topic()}: {error}")

    async def send_many(
        self,
        topic: str,
        messages: Iterable[tuple[bytes | None, bytes]],
        timestamp_ms: int | None = None,
    ) -> int:
        """Queue (key, value) pairs; returns how many."""
        produce, count = self._producer.produce, 0
        extra = {} if timestamp_ms is None else {"timestamp": timestamp_ms}
        for key, value in messages:
            while True:
                try:
                    produce(topic, value, key, on_delivery=self._delivered, **extra)
                    break
                except BufferError:  # the local queue is full: let it drain
                    await asyncio.to_thread(self._producer.poll, 0.05)
                except KafkaException as exc:
                    if exc.args[0].code() == KafkaError.MSG_SIZE_TOO_LARGE:
                        raise ValueError(
                            f"a message of {len(value)} bytes does not fit the producer's limit"
                        ) from None
                    raise
            count += 1
        self._producer.poll(0)  # serve delivery callbacks of earlier messages
        return count

    async def flush(self, timeout_s: float = 60.0) -> None:
        if self._producer is None:  # stopped
            return
        left = await asyncio.to_thread(self._producer.flush, timeout_s)
        errors, self._errors = self._errors, []
        if errors:
            raise DeliveryFailed(f"{len(errors)} message(s) not delivered, first: {errors[0]}")
        if left:
            raise TimeoutError(f"{left} message(s) unacknowledged after {timeout_s} s")
