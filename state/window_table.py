"""Partition-owned windows: each customer's latest W encoded events, in the worker's memory.

The worker that owns a Kafka partition owns the state of its customers (as Kafka Streams and
Flink keep keyed state with the partition owner), so an event never waits for a remote store:
it is applied here, scored from here, and the changed customers are written to Redis once per
batch (``state/partition_fence.py``), which keeps the durable, shared copy.

The window rule (``state/window_rule.py``, its reference), applied one batch at a time: per
customer, the latest ``W`` non-profile events ordered by (event time, event id bytes); an
event id already in the window is a duplicate (or a conflict, when its content hash differs
from the stored one); an event older than every event of a full window changes nothing; the
profile is kept apart, the latest by time, with its exposure. A redelivered event (its
partition offset already applied) changes nothing and is scored as of itself: with the part
of the window up to it, never its future.

The table's storage (the pool of event rows, customer slots, window records) is
``WindowStorage`` (``state/window_storage.py``); this module is the apply path. A batch is
applied in rounds (one event per customer per round), each a few vectorised numpy operations;
late (out-of-order) events, ties and duplicates take a per-event path.
"""

from __future__ import annotations

import numpy as np

from crmrisk.state.window_batches import Appends, AppendStatus, Applied, Windows
from crmrisk.state.window_storage import WindowStorage

__all__ = ["WindowTable"]

_APPLIED, _DUPLICATE, _REDELIVERED = int(AppendStatus.APPLIED), 0, -1
_OUTSIDE, _CONFLICT = int(AppendStatus.OUTSIDE_WINDOW), int(AppendStatus.CONFLICT)


class WindowTable(WindowStorage):
    """The windows of one domain's customers, for the partitions this worker owns, and the
    window rule applied to batches of their events (parameters: ``WindowStorage``)."""

    def apply(self, a: Appends, now_s: float, serial: int) -> Applied:
        """Apply a batch (in order) and return each event's status and the scored windows."""
        n = len(a)
        slot_of = self._slot_of
        slots = np.fromiter(
            (
                slot if (slot := slot_of.get(c)) is not None else self._new_slot(c, int(p))
                for c, p in zip(a.customers, a.partitions.tolist(), strict=True)
            ),
            np.int64,
            n,
        )
        self._used[slots] = serial
        self._seen_s[slots] = now_s
        self._partition[slots] = a.partitions
        status = np.full(n, _APPLIED, np.int8)
        stored = np.zeros(n, np.uint64)
        codes = self._kind_codes(a.kinds)
        keys = [i.encode() for i in a.event_ids]
        rounds = _rounds(slots)
        snapshots: list[tuple] = []
        evicted: list[np.ndarray] = []
        for r in range(int(rounds.max()) + 1 if n else 0):
            sel = np.flatnonzero(rounds == r)
            redelivered = a.redelivered[sel]
            profiles = sel[a.is_profile[sel] & ~redelivered]
            events = sel[~a.is_profile[sel] & ~redelivered]
            for i in profiles.tolist():
                self._apply_profile(i, int(slots[i]), a, status, stored)
            fast, late = self._classify(events, slots, a, keys, status, stored)
            if fast.size:
                evicted.append(self._append_in_order(fast, slots, a, codes, keys))
            for i in late:
                evicted.append(self._insert_late(i, int(slots[i]), a, codes, keys, status))
            scored = sel[(status[sel] == _APPLIED) & ~redelivered]
            scored = scored[self._length[slots[scored]] > 0]
            if scored.size:
                snapshots.append(self._snapshot(scored, slots[scored]))
            for i in sel[redelivered].tolist():
                status[i] = _REDELIVERED
                snapshot = self._snapshot_as_of(i, int(slots[i]), a, keys[i])
                if snapshot is not None:
                    snapshots.append(snapshot)
        windows, scored_index = self._gather(snapshots)
        if evicted:  # only now: earlier rounds' snapshots still pointed at these rows
            self._release(np.concatenate(evicted))
        return Applied(status, stored, scored_index, windows, slots)

    def _apply_profile(
        self, i: int, slot: int, a: Appends, status: np.ndarray, stored: np.ndarray
    ) -> None:
        event_id, t = a.event_ids[i], int(a.times_ms[i])
        if self._pid[slot] == event_id:
            status[i] = _DUPLICATE
            if _differ(int(a.hashes[i]), int(self._phash[slot])):
                status[i], stored[i] = _CONFLICT, self._phash[slot]
        elif not self._has_profile[slot] or self._ptime[slot] <= t:
            self._profile[slot] = a.profiles[i]
            self._has_profile[slot] = True
            self._ptime[slot] = t
            self._phash[slot] = a.hashes[i]
            self._pid[slot] = event_id
            self._exposure[slot] = a.exposure[i]

    def _classify(
        self,
        events: np.ndarray,
        slots: np.ndarray,
        a: Appends,
        keys: list[bytes],
        status: np.ndarray,
        stored: np.ndarray,
    ) -> tuple[np.ndarray, list[int]]:
        """Duplicates and conflicts marked; the rest split into in-order appends and late ones."""
        if not events.size:
            return events, []
        s = slots[events]
        lengths = self._length[s]
        last_t = np.where(
            lengths > 0,
            self._time[self._rows[s, np.maximum(lengths - 1, 0)]],
            np.iinfo(np.int64).min,
        )
        fast, late = [], []
        ids, times = self._ids, a.times_ms
        for j, (i, slot, last) in enumerate(
            zip(events.tolist(), s.tolist(), last_t.tolist(), strict=True)
        ):
            key, blob = keys[i], ids[slot]
            if blob:
                needle = b"\0" + key + b"\0"
                at = (b"\0" + blob).find(needle)
                if at >= 0:
                    status[i] = _DUPLICATE
                    old = int(self._hash[self._rows[slot, blob[:at].count(b"\0")]])
                    if _differ(int(a.hashes[i]), old):
                        status[i], stored[i] = _CONFLICT, old
                    continue
            t = int(times[i])
            if t > last or (t == last and key > blob[: len(blob) - 1].rsplit(b"\0", 1)[-1]):
                fast.append(j)
            else:
                late.append(i)
        return events[fast], late

    def _append_in_order(
        self, idx: np.ndarray, slots: np.ndarray, a: Appends, codes: np.ndarray, keys: list[bytes]
    ) -> np.ndarray:
        """Append events newer than their window's newest, one per customer, vectorised."""
        s = slots[idx]
        lengths = self._length[s]
        full = lengths >= self.window
        evicted = np.zeros(0, np.int32)
        if full.any():
            fs = s[full]
            evicted = self._rows[fs, 0].copy()
            self._rows[fs, :-1] = self._rows[fs, 1:]
            lengths[full] = self.window - 1
        rows = self._alloc(len(idx))
        self._vec[rows] = a.vectors[idx]
        self._time[rows] = a.times_ms[idx]
        self._hash[rows] = a.hashes[idx]
        self._kind[rows] = codes[idx]
        self._rows[s, lengths] = rows
        self._length[s] = lengths + 1
        ids = self._ids
        for i, slot, drop in zip(idx.tolist(), s.tolist(), full.tolist(), strict=True):
            blob = ids[slot]
            if drop:
                blob = blob[blob.index(b"\0") + 1 :]
            ids[slot] = blob + keys[i] + b"\0"
        return evicted

    def _position(self, slot: int, t: int, key: bytes, inclusive: bool) -> int:
        """How many window events sort before (t, key) (``inclusive``: or equal to it)."""
        length = int(self._length[slot])
        times = self._time[self._rows[slot, :length]]
        k = int(np.searchsorted(times, t, side="left"))
        ids = self._ids[slot].split(b"\0")
        while k < length and times[k] == t and (ids[k] < key or (inclusive and ids[k] == key)):
            k += 1
        return k

    def _insert_late(
        self,
        i: int,
        slot: int,
        a: Appends,
        codes: np.ndarray,
        keys: list[bytes],
        status: np.ndarray,
    ) -> np.ndarray:
        """An event that sorts inside its window (late, or a tie): the per-event path."""
        length = int(self._length[slot])
        k = self._position(slot, int(a.times_ms[i]), keys[i], inclusive=False)
        drop = max(length + 1 - self.window, 0)
        if k < drop:
            status[i] = _OUTSIDE
            return np.zeros(0, np.int32)
        row = self._alloc(1)
        self._vec[row] = a.vectors[i]
        self._time[row] = a.times_ms[i]
        self._hash[row] = a.hashes[i]
        self._kind[row] = codes[i]
        current = self._rows[slot, :length]
        merged = np.concatenate([current[:k], row, current[k:]])
        ids = self._ids[slot].split(b"\0")[:length]
        ids.insert(k, keys[i])
        evicted, merged, ids = merged[:drop], merged[drop:], ids[drop:]
        self._rows[slot] = -1
        self._rows[slot, : len(merged)] = merged
        self._length[slot] = len(merged)
        self._ids[slot] = b"".join(x + b"\0" for x in ids)
        return evicted

    def _snapshot(self, idx: np.ndarray, s: np.ndarray) -> tuple:
        return (
            idx,
            self._rows[s],  # fancy indexing copies
            self._length[s].astype(np.int64),
            self._profile[s],
            self._has_profile[s],
            [self._ids[x] for x in s.tolist()],
            self._exposure[s],
        )

    def _snapshot_as_of(self, i: int, slot: int, a: Appends, key: bytes) -> tuple | None:
        """A redelivered event's window: up to and including it, in the window's order."""
        k = self._position(slot, int(a.times_ms[i]), key, inclusive=True)
        if k == 0:
            return None
        rows = np.full((1, self.window), -1, np.int32)
        rows[0, :k] = self._rows[slot, :k]
        ids = self._ids[slot]
        cut = 0
        for _ in range(k):
            cut = ids.index(b"\0", cut) + 1
        return (
            np.array([i]),
            rows,
            np.array([k], np.int64),
            self._profile[[slot]],
            self._has_profile[[slot]],
            [ids[:cut]],
            self._exposure[[slot]],
        )

    def _gather(self, snapshots: list[tuple]) -> tuple[Windows, np.ndarray]:
        if not snapshots:
            empty = np.zeros(0, np.int64)
            return self._windows(empty, np.zeros((0, 0), np.int32), [], snapshots), empty
        index = np.concatenate([s[0] for s in snapshots])
        rows = np.concatenate([s[1] for s in snapshots])
        lengths = np.concatenate([s[2] for s in snapshots])
        width = int(lengths.max())
        rows = rows[:, :width]
        ids = [blob for s in snapshots for blob in s[5]]
        return self._windows(lengths, rows, ids, snapshots), index

    def _windows(self, lengths, rows, ids, snapshots) -> Windows:
        mask = np.arange(rows.shape[1])[None, :] < lengths[:, None]
        safe = np.where(mask, rows, 0)
        events = self._vec[safe]
        events[~mask] = 0.0

        def stack(k: int, dtype: object, shape: tuple) -> np.ndarray:
            if not snapshots:
                return np.zeros(shape, dtype)
            return np.concatenate([s[k] for s in snapshots])

        return Windows(
            events=events,
            mask=mask,
            profile=stack(3, np.float32, (0, self.profile_dim)),
            has_profile=stack(4, bool, (0,)),
            lengths=lengths,
            times_ms=np.where(mask, self._time[safe], 0),
            kind_codes=np.where(mask, self._kind[safe], 0),
            kinds=self.kinds,
            ids=ids,
            exposure=stack(6, np.float64, (0,)),
        )


def _differ(new: int, old: int) -> bool:
    """Contents differ when both hashes are known and unequal (0 = unknown)."""
    return new != 0 and old != 0 and new != old


def _rounds(slots: np.ndarray) -> np.ndarray:
    """Per event, how many earlier events of the batch share its slot (0 for the first).

    >>> _rounds(np.array([5, 3, 5, 5, 3])).tolist()
    [0, 0, 1, 2, 1]
    """
    n = len(slots)
    if n == 0:
        return np.zeros(0, np.int64)
    order = np.argsort(slots, kind="stable")
    ordered = slots[order]
    starts = np.r_[True, ordered[1:] != ordered[:-1]]
    positions = np.arange(n)
    first = np.maximum.accumulate(np.where(starts, positions, 0))
    rounds = np.empty(n, np.int64)
    rounds[order] = positions - first
    return rounds
