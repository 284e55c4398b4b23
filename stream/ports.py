"""The ports a pipeline talks to: where records come from and go, and the three stores.

``stream/pipeline.py`` depends on these protocols only. The workers plug in Kafka
(``stream/kafka_io.py``) and the Redis stores (``state/``); the fast tests plug in the in-memory
twins of the stores (``state/memory.py``, which pass the stores' contract tests) and a list.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from state import AlertState, Append, AppendResult

__all__ = ["AlertStore", "Record", "RecordSource", "ScoreStore", "SequenceStore", "Sink"]


class Record(Protocol):
    """A consumed message (aiokafka, kafka-python and confluent-kafka records qualify)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int  # ms since epoch, set by the producer


class RecordSource(Protocol):
    async def next_batch(self, idle_timeout_s: float) -> list[Record]:
        """Up to a dynamic batch of records; empty after ``idle_timeout_s`` without any."""
        ...

    async def commit(self, records: Sequence[Record]) -> bool:
        """Mark ``records`` done; False when a rebalance took their partitions away."""
        ...

    async def lag(self) -> int:
        """Messages behind the high watermarks of the assigned partitions."""
        ...


class Sink(Protocol):
    async def send_many(self, topic: str, messages: Iterable[tuple[bytes | None, bytes]]) -> int:
        """Queue (key, value) pairs; returns how many."""
        ...

    async def flush(self) -> None:
        """Wait until everything queued is acknowledged (raises if something failed)."""
        ...


class SequenceStore(Protocol):
    def append_many(self, items: Sequence[Append]) -> list[AppendResult]: ...


class AlertStore(Protocol):
    def read_many(self, customers: Sequence[tuple[str, str]]) -> list[AlertState]: ...

    def write_many(self, items: Sequence[tuple[str, str, AlertState]]) -> None: ...


class ScoreStore(Protocol):
    def write_many(self, items: Sequence[tuple[str, str, bytes]]) -> None: ...
