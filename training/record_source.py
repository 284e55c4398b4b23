"""What the trainer's reading loop reads from: batches of records per topic partition.

The loop (``training.trainer_loop``) needs only these shapes; the composition root supplies a
source backed by the broker (``crmrisk.trainer_feed``), tests a list in memory. kafka-python's
``TopicPartition`` and ``ConsumerRecord`` already have them, so that source passes its batches
through unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

__all__ = ["Partition", "Record", "RecordSource"]


class Partition(Protocol):
    """One partition of one topic."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...


class Record(Protocol):
    """One message: its offset in its partition and its bytes."""

    @property
    def offset(self) -> int: ...

    @property
    def value(self) -> bytes: ...


class RecordSource(Protocol):
    """Events and outcomes from their first offsets, scores from the end."""

    def poll(self, timeout_ms: int, max_records: int) -> Mapping[Partition, Sequence[Record]]:
        """The next records read, by partition, in offset order within each."""
        ...

    @property
    def caught_up(self) -> bool:
        """Every event that existed when the source was opened has been returned."""
        ...

    def close(self) -> None: ...
