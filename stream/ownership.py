"""Which input partitions this worker owns, since when, how far applied: the bookkeeping of
partition-owned state (``state/partition_fence.py`` holds the durable side).

A partition is claimed lazily, when its first records arrive (after an assignment, a restart or
a rewind), before they are processed. The claim tells where the durable state stands against
the first record in hand, and so what to do first:

- Redis holds nothing for the partition (a first run, or Redis lost it): restore its whole
  retained history from the topic, starting from empty customers (``fresh``);
- Redis holds less than the records in hand start from (a lost tail: Redis restored from an
  older snapshot, or the last second of an append-only file lost in a crash): restore the
  missing records on top of what Redis holds;
- Redis holds more (this worker crashed after a write and before its commit, or a zombie wrote
  before it was fenced): those records are redeliveries, scored as of themselves, not applied.

Writes are planned in batch order: each names the offset it expects the durable copy to hold
and the one it leaves, chained before the earlier ones land (batches overlap). When a write is
refused, the partition's later in-flight batches are void (their ``incarnation`` is stale).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from crmrisk.stream.ports import Record, StateCopy

__all__ = ["Ownership", "Restore"]

log = logging.getLogger(__name__)


@dataclass
class _Owned:
    epoch: int
    applied: int | None  # next offset the durable copy holds once planned writes land
    replayed_below: int  # records below it were applied before the claim: redeliveries
    incarnation: int
    written: int | None = None  # next offset of the last write Redis acknowledged


@dataclass(frozen=True)
class Restore:
    """Records of ``partition`` to apply to the state before the ones in hand."""

    partition: int
    start: int | None  # None: from the earliest retained offset
    end: int  # exclusive: the first record in hand
    fresh: bool  # from nothing: customers start empty, Redis is not read for them


class Ownership:
    """The partitions of one input ``topic`` this worker has claimed."""

    def __init__(self, topic: str, state: StateCopy) -> None:
        self.topic = topic
        self._state = state
        self._owned: dict[int, _Owned] = {}
        self._incarnation = itertools.count(1)
        self.fenced: set[int] = set()  # a newer owner took them: not ours until reassigned

    def owned(self) -> list[int]:
        return sorted(self._owned)

    def unclaimed(self, records: Sequence[Record]) -> dict[int, int]:
        """Partitions of ``records`` not claimed yet (nor fenced) -> their first offset."""
        first: dict[int, int] = {}
        for r in records:
            p = r.partition
            if p not in self._owned and p not in self.fenced and r.offset < first.get(p, 1 << 62):
                first[p] = r.offset
        return first

    def claim(self, partition: int, first: int, generation: int | None) -> Restore | bool | None:
        """Claim ``partition`` whose records in hand start at ``first``: what to restore first
        (None: nothing), or False when a newer consumer group generation owns it.
        ``generation`` None: a tool's claim outside the group (``crmrisk state rebuild``)."""
        claim = self._state.claim(self.topic, partition, generation)
        if claim.epoch == 0:
            log.warning(
                "%s/%d: claimed by a newer consumer group generation: this worker missed a "
                "rebalance; leaving the partition to its owner",
                self.topic,
                partition,
            )
            self.fenced.add(partition)
            return False
        applied = claim.applied
        restore = None
        if applied is None:
            restore = Restore(partition, None, first, fresh=True)
        elif applied < first:
            log.warning(
                "%s/%d: the state in Redis holds offsets below %d only, the records in hand start"
                " at %d (Redis lost a tail of its writes): restoring the missing ones",
                self.topic,
                partition,
                applied,
                first,
            )
            restore = Restore(partition, applied, first, fresh=False)
        # Records below what Redis holds were applied: redeliveries (a restore reads only above).
        self._owned[partition] = _Owned(claim.epoch, applied, applied or 0, next(self._incarnation))
        return restore

    def redelivered(self, partitions: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """Which (partition, offset) the state held before this owner claimed it."""
        out = np.zeros(len(partitions), bool)
        for p in np.unique(partitions).tolist():
            owned = self._owned.get(p)
            if owned is not None and owned.replayed_below:
                rows = partitions == p
                out[rows] = offsets[rows] < owned.replayed_below
        return out

    def plan(self, partition: int, new: int) -> tuple[int, int | None, int]:
        """(epoch, expected next offset, incarnation) of a write leaving ``new``; chains the next
        plan onto it."""
        owned = self._owned[partition]
        expected = owned.applied
        owned.applied = max(new, expected or 0)
        return owned.epoch, expected, owned.incarnation

    def written(self, partition: int, incarnation: int, new: int) -> None:
        """Redis acknowledged a write up to ``new`` (what ``lost`` compares with)."""
        owned = self._owned.get(partition)
        if owned is not None and owned.incarnation == incarnation:
            owned.written = new

    def lost(self, applied: dict[int, int | None]) -> list[int]:
        """Owned partitions whose durable state went back behind what Redis acknowledged
        (``applied``: the next offsets Redis holds now): it restarted empty, or lost a tail."""
        out = []
        for p, now in applied.items():
            owned = self._owned.get(p)
            if owned is None or owned.written is None:
                continue
            if now is None or now < owned.written:
                out.append(p)
        return out

    def epochs(self) -> dict[int, int]:
        return {p: o.epoch for p, o in self._owned.items()}

    def current(self, partition: int, incarnation: int) -> bool:
        owned = self._owned.get(partition)
        return owned is not None and owned.incarnation == incarnation

    def release(self, partition: int) -> None:
        """Forget the claim (revoked, rewound, or fenced): the next records claim it again."""
        self._owned.pop(partition, None)

    def assigned(self, partitions: Sequence[int]) -> None:
        """A fresh assignment names these partitions ours again."""
        self.fenced.difference_update(partitions)
