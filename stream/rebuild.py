"""Rebuilding lost state from ``crm.events``: Redis is a cache of the topic, not its owner.

Before a batch is processed, ``StateRebuilder.ensure`` checks the marks of its partitions
(``state.PartitionMarks``). A partition without a mark has state nobody vouches for: Redis
restarted empty, or this is the partition's first batch. Its history, from the earliest retained
offset up to the batch's first offset, is read back from the topic and restored: the windows
through the same intake and Lua append as live events (without the offset guard: idempotent by
event id, and a window is the newest W events whatever order they arrive in), and, where the
worker scores, each restored event is scored again so that alert states (hysteresis, cool-down)
and latest scores come out as a replay would leave them; nothing is produced. Then the mark is
set and the batch goes on: scoring resumes only on whole histories.

``crmrisk state rebuild`` runs the same rebuild by hand, for every partition, with a progress
bar (``crmrisk/commands/state.py``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Protocol

from stream.ports import Record

__all__ = ["History", "Marks", "StateRebuilder"]

log = logging.getLogger(__name__)


class Marks(Protocol):
    def missing(self, topic: str, partitions: Sequence[int]) -> list[int]: ...

    def mark(self, topic: str, partition: int, rebuilt_events: int, up_to: int) -> None: ...


class History(Protocol):
    """Reads a partition's past records (``stream.kafka_io.KafkaHistory``, a list in tests)."""

    async def beginning(self, topic: str, partition: int) -> int: ...

    def read(self, topic: str, partition: int, start: int, end: int) -> AsyncIterator[list]: ...

    async def close(self) -> None: ...


class StateRebuilder:
    """Restores unmarked partitions before their records are processed.

    ``restore(records)`` applies past records to the state without producing anything
    (``Pipeline.restore``) and returns how many it applied.
    """

    def __init__(
        self,
        marks: Marks,
        history: History,
        restore: Callable[[Sequence[Record]], int],
        on_rebuilt: Callable[[str, int, int], None] | None = None,
    ) -> None:
        self.marks = marks
        self.history = history
        self._restore = restore
        self._on_rebuilt = on_rebuilt

    def unmarked(self, records: Sequence[Record]) -> dict[tuple[str, int], int]:
        """Partitions of ``records`` without a mark -> their first offset in ``records``."""
        first: dict[tuple[str, int], int] = {}
        for r in records:
            key = (r.topic, r.partition)
            if key not in first or r.offset < first[key]:
                first[key] = r.offset
        by_topic: dict[str, list[int]] = defaultdict(list)
        for topic, partition in first:
            by_topic[topic].append(partition)
        return {
            (topic, p): first[(topic, p)]
            for topic, partitions in by_topic.items()
            for p in self.marks.missing(topic, sorted(partitions))
        }

    async def ensure(self, records: Sequence[Record]) -> int:
        """Rebuild every unmarked partition of ``records``; returns the events replayed."""
        total = 0
        try:
            for (topic, partition), end in self.unmarked(records).items():
                total += await self.rebuild(topic, partition, end)
        finally:
            await self.history.close()
        return total

    async def rebuild(
        self,
        topic: str,
        partition: int,
        end: int,
        progress: Callable[[int, int], None] | None = None,
    ) -> int:
        """Restore ``partition`` from its earliest offset up to ``end`` (exclusive), then mark it.

        ``progress(done, total)`` is called after each chunk (offsets, not events).
        """
        # Offset 0 has no past: no consumer to open (a fresh topic's first batch stays fast).
        start = 0 if end == 0 else await self.history.beginning(topic, partition)
        replayed = 0
        if end > start:
            log.warning(
                "%s/%d: no state mark (Redis lost it, or a first run): rebuilding offsets %d-%d",
                topic, partition, start, end - 1,
            )  # fmt: skip
            async for chunk in self.history.read(topic, partition, start, end):
                replayed += self._restore(chunk)
                if progress is not None and chunk:
                    progress(chunk[-1].offset + 1 - start, end - start)
            log.warning("%s/%d: state rebuilt from %d events", topic, partition, replayed)
        self.marks.mark(topic, partition, replayed, end)
        if self._on_rebuilt is not None and end > start:
            self._on_rebuilt(topic, partition, replayed)
        return replayed
