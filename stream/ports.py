"""The ports a pipeline talks to: where records come from and go, and the state's durable copy.

``stream/pipeline.py`` depends on these protocols only. The workers plug in Kafka
(``stream/kafka_consumer.py``, ``stream/kafka_producer.py``) and Redis
(``state.PartitionFence``); the fast tests plug in lists and
the in-memory twin of the state (``state.memory.MemoryState``, which passes the same contract
tests as Redis).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from crmrisk.state import AlertRecord, Claim, PartitionWrite, Refusal, WindowRecord

__all__ = [
    "Delivery",
    "History",
    "Record",
    "RecordSource",
    "Sink",
    "StateCopy",
    "Topics",
]


class Record(Protocol):
    """A consumed message (aiokafka, kafka-python and confluent-kafka records qualify)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int  # ms since epoch, set by the producer


class RecordSource(Protocol):
    """One input topic, consumed as a member of a consumer group."""

    async def next_batch(self, idle_timeout_s: float) -> list[Record]: ...

    def owns(self, partition: int) -> bool:
        """Whether the partition is assigned to this member now."""
        ...

    def generation(self) -> int:
        """The consumer group generation of the current assignment."""
        ...

    async def commit(self, offsets: dict[int, int]) -> bool:
        """Commit partition -> next offset; False when a rebalance took them first."""
        ...

    def rewind(self, partition: int, offset: int) -> None:
        """Fetch the partition again from ``offset`` (what was fetched after it is dropped)."""
        ...

    async def lag(self) -> int: ...


class Delivery:
    """The acknowledgements of one batch's messages: counted down by the sink's callbacks
    (from the producer's thread), awaited by the pipeline."""

    def __init__(self) -> None:
        self.pending = 0
        self.failed: list[tuple[str, bytes | None, bytes]] = []
        self.errors: list[str] = []
        self.acked_at: float | None = None  # wall time the last message was acknowledged
        self._loop: asyncio.AbstractEventLoop | None = None
        self._done: asyncio.Event | None = None

    def sent(self, count: int) -> None:
        self.pending += count

    def acked(self, failed: tuple[str, bytes | None, bytes] | None = None, error: str = "") -> None:
        """One message settled (``failed``: it was not delivered and must be sent again)."""
        if failed is not None:
            self.failed.append(failed)
            self.errors.append(error)
        self.pending -= 1
        if self.pending == 0:
            self.acked_at = time.time()
            if self._done is not None and self._loop is not None:
                self._loop.call_soon_threadsafe(self._done.set)

    async def wait(self, timeout_s: float) -> None:
        """Until every message settled; ``TimeoutError`` after ``timeout_s``."""
        if self.pending <= 0:
            return
        self._loop = asyncio.get_running_loop()
        self._done = asyncio.Event()
        if self.pending <= 0:  # settled meanwhile (callbacks run in another thread)
            return
        await asyncio.wait_for(self._done.wait(), timeout_s)


class Sink(Protocol):
    def send(
        self, topic: str, messages: Iterable[tuple[bytes | None, bytes]], delivery: Delivery
    ) -> int:
        """Queue (key, value) messages; their acknowledgements count down ``delivery``."""
        ...

    async def delivered(self, delivery: Delivery) -> None:
        """Wait until ``delivery`` settled; raise ``DeliveryFailed`` when messages were lost
        (they stay in ``delivery.failed`` for ``resend``) or ``TimeoutError``."""
        ...

    def resend(self, delivery: Delivery) -> int:
        """Send the lost messages of ``delivery`` again."""
        ...


class History(Protocol):
    """Reads a partition's past records (``kafka_consumer.KafkaHistory``, a list in tests)."""

    async def beginning(self, topic: str, partition: int) -> int: ...

    def read(self, topic: str, partition: int, start: int, end: int) -> AsyncIterator[list]: ...

    async def close(self) -> None: ...


class StateCopy(Protocol):
    """The durable copy of the partitions' state (``state.PartitionFence`` on Redis)."""

    def claim(self, topic: str, partition: int, generation: int) -> Claim: ...

    def write(self, topic: str, writes: Sequence[PartitionWrite]) -> list[Refusal]: ...

    def read(
        self, domain: str, windows: Sequence[str], alerts: Sequence[str]
    ) -> tuple[list[WindowRecord | None], list[AlertRecord | None]]: ...

    def applied(self, topic: str, partitions: Sequence[int]) -> dict[int, int | None]: ...


@dataclass(frozen=True)
class Topics:
    """Where the pipeline produces: dead letters, scores, alerts; requests for the hand-off."""

    dead_letters: str
    scores: str
    alerts: str
    score_requests: str | None = None
    shadow_scores: str | None = None  # a shadow challenger's scores (none without a trial)
