"""Claims and restores: a partition's state made whole before the pipeline processes it.

Partition ownership (``stream/ownership.py``): a partition is claimed before its first records
are processed, and restored from the topic (``history``) first when Redis lost its state or a
tail of it. A write refused because a newer owner claimed the partition stops it here until a
new assignment; one refused because Redis lost the state rewinds the partition to the batch and
rebuilds it. A revoked partition's in-flight batches are completed first, then its state is
dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

from crmrisk.stream.batch import Batch
from crmrisk.stream.outage import as_awaitable
from crmrisk.stream.ownership import Restore
from crmrisk.stream.ports import History, Record
from crmrisk.stream.stages import BatchStages

__all__ = ["Restorer"]

log = logging.getLogger(__name__)


class Restorer:
    """The claim-and-restore half of ``Pipeline`` (a base class, beside ``Completer``, whose
    refusals, writes and drain it uses)."""

    stages: BatchStages
    history: History | None

    async def _verify(self, records: list[Record]) -> None:
        """Did Redis lose the state of a partition in hand since this worker wrote it (restarted
        empty, or lost a tail)? One small read per batch; such a partition is claimed and
        restored again before its records are processed. Batches of it still in flight are
        completed first (their writes are refused; the partition is rewound to them)."""
        owned = {r.partition for r in records} & set(self.ownership.owned())
        if not owned:
            return
        applied = await self.outage.retry(
            "checking state",
            partial(as_awaitable, self.state.applied, self.ownership.topic, sorted(owned)),
        )
        lost = self.ownership.lost(applied)
        if not lost:
            return
        log.error(
            "%s: Redis lost the state of partition(s) %s: restoring them from the topic",
            self.ownership.topic,
            lost,
        )
        if any(self._inflight[p] for p in lost):
            await self.drain()
            self._settle_refusals()
        self._drop(lost)

    async def _claim(self, records: list[Record]) -> list[Record]:
        """Claim the partitions seen for the first time (restoring their state first where
        Redis lacks it); the records of partitions that cannot be ours are left out."""
        unclaimed = self.ownership.unclaimed(records)
        if not unclaimed:
            return records
        generation = self.source.generation()
        try:
            for p, first in unclaimed.items():
                plan = await self.outage.retry(
                    "claiming partitions",
                    partial(as_awaitable, self.ownership.claim, p, first, generation),
                )
                if plan:
                    await self._restore(plan)
        finally:
            if self.history is not None:
                await self.history.close()
        return self._mine(records)

    async def _restore(
        self, plan: Restore, progress: Callable[[int, int], None] | None = None
    ) -> int:
        """Apply the partition's records [start, end) to the state (nothing published)."""
        p, end = plan.partition, plan.end
        if end == 0 and plan.start is None:  # offset 0 has no past: nothing to read
            return 0
        if self.history is None:  # RISK_SCORING__REBUILD_STATE=0: serve what Redis has
            log.warning("%s/%d: state not restored (rebuild_state is off)", self.ownership.topic, p)
            return 0
        beginning = 0 if end == 0 else await self.history.beginning(self.ownership.topic, p)
        start = beginning if plan.start is None else max(plan.start, beginning)
        if plan.start is not None and plan.start < beginning:
            log.error(
                "%s/%d: offsets %d-%d are gone from the topic: their events are lost to the state",
                self.ownership.topic,
                p,
                plan.start,
                beginning - 1,
            )
        if start >= end:
            return 0
        log.warning(
            "%s/%d: restoring the state from offsets %d-%d%s",
            self.ownership.topic,
            p,
            start,
            end - 1,
            " (Redis had none)" if plan.fresh else "",
        )
        fresh = {p} if plan.fresh else set()
        replayed = 0
        async for chunk in self.history.read(self.ownership.topic, p, start, end):
            batch = Batch(next(self._serial), chunk)
            decoded, units = self.stages.decode(chunk, batch)
            await self.outage.retry(
                "loading customers", partial(as_awaitable, self.stages.load, units, fresh)
            )
            self.stages.apply(decoded, units, batch, publish=False)
            writes = list(batch.writes.values())
            refusals = await self.outage.retry("writing state", partial(self._write, writes))
            if refusals:
                self._refused[p] = end
                self.ownership.release(p)
                log.error(
                    "%s/%d: restore refused (%s)", self.ownership.topic, p, refusals[0].reason
                )
                return replayed
            for w in writes:
                self.ownership.written(w.partition, batch.incarnations[w.partition], w.new)
            replayed += len(chunk)
            self.metrics.rebuilt.inc(len(chunk))
            self.durable_serial = batch.serial
            if progress is not None:
                progress(chunk[-1].offset + 1 - start, end - start)
        log.warning("%s/%d: state restored from %d records", self.ownership.topic, p, replayed)
        return replayed

    async def rebuild(
        self, partition: int, end: int, progress: Callable[[int, int], None] | None = None
    ) -> int:
        """Bring ``partition``'s state in Redis up to offset ``end`` from the topic
        (``crmrisk state rebuild``; no worker may serve the partition meanwhile)."""
        self._drop([partition])
        plan = self.ownership.claim(partition, end, generation=None)
        try:
            return await self._restore(plan, progress) if plan else 0
        finally:
            self._drop([partition])
