"""The producer side of Kafka: confluent-kafka for the workers, aiokafka's batch API beside it.

Chosen by numbers (``benchmarks/kafka_clients.py``, CPU per message): producing (idempotent,
acks=all), confluent-kafka (librdkafka, C) costs ~2 us a message, aiokafka's batch API ~7 us
and kafka-python ~55 us. So the workers produce with confluent-kafka, whose ``produce`` only
queues (its own threads send) and whose flush runs off the event loop; ``BatchProducer`` stays
for replays and benchmarks that choose aiokafka (``kafka.producer``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from confluent_kafka import KafkaError, KafkaException, Producer

from crmrisk.stream.kafka_options import aiokafka_options, librdkafka_options

__all__ = ["BatchProducer", "DeliveryFailed", "FastProducer"]


class DeliveryFailed(RuntimeError):
    """Kafka refused or lost messages for good: they must be sent again (not just flushed)."""


class BatchProducer:
    """Produces many messages through aiokafka's batch API, keyed like the default partitioner.

    ``send_many`` returns at once; ``flush`` waits until Kafka acknowledged everything sent.
    The producer is idempotent with ``acks=all``: retries never duplicate a record.
    """

    def __init__(self, client: Mapping[str, Any], client_id: str, linger_ms: int = 5) -> None:
        self._producer = AIOKafkaProducer(
            **aiokafka_options(client),
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
