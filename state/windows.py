"""Partition-owned windows: each customer's latest W encoded events, in the worker's memory.

The worker that owns a Kafka partition owns the state of its customers (as Kafka Streams and
Flink keep keyed state with the partition owner), so an event never waits for a remote store:
it is applied here, scored from here, and the changed customers are written to Redis once per
batch (``state/partition_fence.py``), which keeps the durable, shared copy.

The window rule (the one place it is written for the stream): per customer, the latest ``W``
non-profile events ordered by (event time, event id bytes); an event id already in the window
is a duplicate (or a conflict, when its content hash differs from the stored one); an event
older than every event of a full window changes nothing; the profile is kept apart, the latest
by time, with its exposure. A redelivered event (its partition offset already applied) changes
nothing and is scored as of itself: with the part of the window up to it, never its future.

Storage is columnar, not an object per event: event vectors, times, content hashes and kind
codes live in one pool of rows (grown by doubling, rows reused through a free list), and each
customer has a row of W pool indexes, a length, its profile, and its event ids packed as
NUL-terminated bytes (the Redis record's layout). A batch is applied in rounds (one event per
customer per round), each a few vectorised numpy operations; late (out-of-order) events, ties
and duplicates take a per-event path. Memory is the pool (bytes per stored event:
``4 * event_dim + 20``) plus ``~4 * W + 4 * profile_dim + 250`` bytes per customer
(``nbytes``), bounded by ``evict`` (least recently used customers whose state Redis holds).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from state.records import WindowRecord, pack_windows, unpack_window

__all__ = ["AppendStatus", "Appends", "Applied", "WindowTable", "Windows"]


class AppendStatus(IntEnum):
    APPLIED = 1
    DUPLICATE = 0  # the event id is already in the window (or is the stored profile)
    REDELIVERED = -1  # the partition offset was already applied: scored as of itself
    OUTSIDE_WINDOW = 2  # older than every event of a full window: nothing changed
    CONFLICT = 4  # the event id is stored with other content: a producer bug, nothing changed


_APPLIED, _DUPLICATE, _REDELIVERED = int(AppendStatus.APPLIED), 0, -1
_OUTSIDE, _CONFLICT = int(AppendStatus.OUTSIDE_WINDOW), int(AppendStatus.CONFLICT)


@dataclass
class Appends:
    """A batch of encoded events of one domain, in arrival order (columns, not objects).

    ``vectors`` rows of profile events and ``profiles`` rows of other events are ignored;
    ``hashes`` 0 and ``exposure`` NaN mean unknown / none.
    """

    customers: list[str]
    event_ids: list[str]
    times_ms: np.ndarray  # int64 (n,)
    kinds: list[str]
    vectors: np.ndarray  # float32 (n, event_dim)
    profiles: np.ndarray  # float32 (n, profile_dim)
    is_profile: np.ndarray  # bool (n,)
    hashes: np.ndarray  # uint64 (n,)
    exposure: np.ndarray  # float64 (n,)
    partitions: np.ndarray  # int32 (n,)
    redelivered: np.ndarray  # bool (n,)

    def __len__(self) -> int:
        return len(self.customers)


@dataclass
class Windows:
    """The windows that scored events left, right-padded: row b is ``Applied.scored[b]``."""

    events: np.ndarray  # float32 (B, T, E)
    mask: np.ndarray  # bool (B, T)
    profile: np.ndarray  # float32 (B, P), zeros without a profile
    has_profile: np.ndarray  # bool (B,)
    lengths: np.ndarray  # int64 (B,)
    times_ms: np.ndarray  # int64 (B, T)
    kind_codes: np.ndarray  # int32 (B, T), names in ``kinds``
    kinds: Sequence[str]
    ids: list[bytes]  # per row, the window's event ids NUL-terminated (immutable snapshots)
    exposure: np.ndarray  # float64 (B,), NaN: none

    def __len__(self) -> int:
        return len(self.lengths)

    def event_ids(self, row: int) -> list[str]:
        return self.ids[row].decode().split("\0")[: int(self.lengths[row])]

    @staticmethod
    def concat(parts: Sequence[Windows]) -> Windows:
        """Several ``Windows`` (of one domain) as one, padded to the longest."""
        if len(parts) == 1:
            return parts[0]
        longest = max(p.mask.shape[1] for p in parts)

        def pad(a: np.ndarray) -> np.ndarray:
            return np.pad(a, [(0, 0), (0, longest - a.shape[1])] + [(0, 0)] * (a.ndim - 2))

        return Windows(
            events=np.concatenate([pad(p.events) for p in parts]),
            mask=np.concatenate([pad(p.mask) for p in parts]),
            profile=np.concatenate([p.profile for p in parts]),
            has_profile=np.concatenate([p.has_profile for p in parts]),
            lengths=np.concatenate([p.lengths for p in parts]),
            times_ms=np.concatenate([pad(p.times_ms) for p in parts]),
            kind_codes=np.concatenate([pad(p.kind_codes) for p in parts]),
            kinds=parts[0].kinds,
            ids=[i for p in parts for i in p.ids],
            exposure=np.concatenate([p.exposure for p in parts]),
        )

    def take(self, rows: np.ndarray) -> Windows:
        """The windows of ``rows`` only (copies: they outlive the batch on the alert path)."""
        return Windows(
            self.events[rows],
            self.mask[rows],
            self.profile[rows],
            self.has_profile[rows],
            self.lengths[rows],
            self.times_ms[rows],
            self.kind_codes[rows],
            self.kinds,
            [self.ids[i] for i in rows.tolist()],
            self.exposure[rows],
        )


@dataclass
class Applied:
    status: np.ndarray  # int8 (n,), ``AppendStatus`` values
    stored_hash: np.ndarray  # uint64 (n,): with CONFLICT, the content hash already stored
    scored: np.ndarray  # int64 (B,): the events to score, in score order (per customer: arrival)
    windows: Windows
    slots: np.ndarray  # int64 (n,): each event's customer slot (``records`` writes them back)


class WindowTable:
    """The windows of one domain's customers, for the partitions this worker owns.

    Parameters
    ----------
    window
        Events kept per customer (W).
    event_dim, profile_dim
        Widths of the encoded event and profile vectors.
    ttl_s
        A customer not touched for this long is forgotten, as its Redis key expires.
    """

    def __init__(self, window: int, event_dim: int, profile_dim: int, ttl_s: float) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window, self.event_dim, self.profile_dim, self.ttl_s = (
            window,
            event_dim,
            profile_dim,
            ttl_s,
        )
        self.kinds: list[str] = []
        self._kind_code: dict[str, int] = {}
        self._slot_of: dict[str, int] = {}
        self._free_slots: list[int] = []
        self._grow_slots(256)
        self._vec = np.zeros((0, event_dim), np.float32)
        self._time = np.zeros(0, np.int64)
        self._hash = np.zeros(0, np.uint64)
        self._kind = np.zeros(0, np.int32)
        self._free = np.zeros(0, np.int32)
        self._nfree = 0
        self._grow_pool(1024)

    # -- storage ----------------------------------------------------------------------------

    def _grow_slots(self, capacity: int) -> None:
        old = getattr(self, "_length", np.zeros(0, np.int32)).shape[0]
        w, p = self.window, self.profile_dim

        def grow(name: str, shape: tuple, dtype: object, fill: object = 0) -> None:
            new = np.full(shape, fill, dtype)
            if old:
                new[:old] = getattr(self, name)
            setattr(self, name, new)

        grow("_rows", (capacity, w), np.int32, -1)
        grow("_length", (capacity,), np.int32)
        grow("_partition", (capacity,), np.int32, -1)
        grow("_used", (capacity,), np.int64)  # batch serial of the last use (LRU)
        grow("_seen_s", (capacity,), np.float64)  # wall time of the last use (TTL)
        grow("_profile", (capacity, p), np.float32)
        grow("_has_profile", (capacity,), bool)
        grow("_ptime", (capacity,), np.int64)
        grow("_phash", (capacity,), np.uint64)
        grow("_exposure", (capacity,), np.float64, np.nan)
        ids = getattr(self, "_ids", [])
        self._ids: list[bytes] = ids + [b""] * (capacity - old)
        self._pid: list[str | None] = getattr(self, "_pid", []) + [None] * (capacity - old)
        self._customer: list[str | None] = getattr(self, "_customer", []) + [None] * (
            capacity - old
        )
        self._free_slots.extend(range(capacity - 1, old - 1, -1))

    def _grow_pool(self, extra: int) -> None:
        old = self._time.shape[0]
        size = max(2 * old, old + extra)
        self._vec = np.concatenate([self._vec, np.zeros((size - old, self.event_dim), np.float32)])
        self._time = np.concatenate([self._time, np.zeros(size - old, np.int64)])
        self._hash = np.concatenate([self._hash, np.zeros(size - old, np.uint64)])
        self._kind = np.concatenate([self._kind, np.zeros(size - old, np.int32)])
        free = np.arange(size - 1, old - 1, -1, dtype=np.int32)
        self._free = np.concatenate([self._free[: self._nfree], free])
        self._nfree = self._free.shape[0]

    def _alloc(self, n: int) -> np.ndarray:
        if self._nfree < n:
            self._grow_pool(n - self._nfree)
        self._nfree -= n
        return self._free[self._nfree : self._nfree + n].copy()

    def _release(self, rows: np.ndarray) -> None:
        rows = rows[rows >= 0]
        if self._nfree + len(rows) > self._free.shape[0]:
            self._free = np.concatenate([self._free, np.zeros(len(rows), np.int32)])
        self._free[self._nfree : self._nfree + len(rows)] = rows
        self._nfree += len(rows)

    def _new_slot(self, customer: str, partition: int) -> int:
        if not self._free_slots:
            self._grow_slots(2 * len(self._ids))
        slot = self._free_slots.pop()
        self._slot_of[customer] = slot
        self._customer[slot] = customer
        self._partition[slot] = partition
        return slot

    def _clear(self, slot: int) -> None:
        length = self._length[slot]
        self._release(self._rows[slot, :length].copy())
        self._rows[slot] = -1
        self._length[slot] = 0
        self._ids[slot] = b""
        self._has_profile[slot] = False
        self._profile[slot] = 0
        self._ptime[slot] = 0
        self._phash[slot] = 0
        self._pid[slot] = None
        self._exposure[slot] = np.nan

    def _forget(self, slot: int) -> None:
        self._clear(slot)
        customer = self._customer[slot]
        if customer is not None:
            del self._slot_of[customer]
        self._customer[slot] = None
        self._partition[slot] = -1
        self._free_slots.append(slot)

    def _kind_codes(self, kinds: Sequence[str]) -> np.ndarray:
        codes = self._kind_code
        for kind in set(kinds) - codes.keys():
            codes[kind] = len(self.kinds)
            self.kinds.append(kind)
        return np.fromiter((codes[k] for k in kinds), np.int32, len(kinds))

    # -- the owner's view -------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._slot_of)

    def __contains__(self, customer: str) -> bool:
        return customer in self._slot_of

    def missing(self, customers: Sequence[str], now_s: float) -> list[str]:
        """Customers not held here (to load from Redis first), each once; a customer unused for
        ``ttl_s`` is forgotten first, as Redis forgets it."""
        out = []
        slot_of = self._slot_of
        for customer in dict.fromkeys(customers):
            slot = slot_of.get(customer)
            if slot is not None and now_s - self._seen_s[slot] > self.ttl_s:
                self._forget(slot)
                slot = None
            if slot is None:
                out.append(customer)
        return out

    def load(self, customer: str, partition: int, record: WindowRecord | None) -> None:
        """Hold ``customer`` from its Redis record (None: a customer Redis does not know)."""
        slot = self._slot_of.get(customer)
        if slot is None:
            slot = self._new_slot(customer, partition)
        else:
            self._clear(slot)
        if record is None:
            return
        if record.events.shape[1:] not in ((self.event_dim,), (0,)) or (
            record.profile is not None and record.profile.shape != (self.profile_dim,)
        ):
            return  # encoded for another model's widths: start over (the topic has the events)
        length = min(len(record.event_ids), self.window)
        rows = self._alloc(length)
        self._vec[rows] = record.events[-length:] if length else 0
        self._time[rows] = record.event_times_ms[-length:]
        self._hash[rows] = record.hashes[-length:]
        self._kind[rows] = self._kind_codes(record.kinds[-length:])
        self._rows[slot, :length] = rows
        self._length[slot] = length
        self._ids[slot] = b"".join(i.encode() + b"\0" for i in record.event_ids[-length:])
        if record.profile is not None:
            self._profile[slot] = record.profile
            self._has_profile[slot] = True
            self._ptime[slot] = record.profile_time_ms
            self._phash[slot] = record.profile_hash
            self._pid[slot] = record.profile_id
        self._exposure[slot] = np.nan if record.exposure is None else record.exposure

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

    # -- the durable copy -------------------------------------------------------------------

    def records(self, slots: np.ndarray, epochs: dict[int, int]) -> list[tuple[str, int, bytes]]:
        """(customer, partition, window record) of each slot once, as the state is now; a
        partition's record carries its owner's epoch (``epochs``) for the write guard."""
        unique = [s for s in np.unique(slots).tolist() if self._customer[s] is not None]
        if not unique:
            return []
        s = np.array(unique, np.int64)
        lengths = self._length[s]
        flat = self._rows[s][np.arange(self.window)[None, :] < lengths[:, None]]
        kind_names = [k.encode() + b"\0" for k in self.kinds]
        codes = self._kind[flat].tolist()
        kinds, at = [], 0
        for length in lengths.tolist():
            kinds.append(b"".join([kind_names[c] for c in codes[at : at + length]]))
            at += length
        partitions = self._partition[s]
        raw = pack_windows(
            partitions,
            np.array([epochs.get(p, 0) for p in partitions.tolist()], np.int64),
            lengths,
            [self._ids[x] for x in unique],
            kinds,
            self._time[flat],
            self._hash[flat],
            self._vec[flat],
            self._profile[s],
            self._has_profile[s],
            self._ptime[s],
            [self._pid[x] for x in unique],
            self._phash[s],
            self._exposure[s],
        )
        return [
            (self._customer[x], int(p), r)
            for x, p, r in zip(unique, partitions.tolist(), raw, strict=True)
        ]

    def drop_partitions(self, partitions: Sequence[int]) -> int:
        """Forget the customers of ``partitions`` (revoked, or to be rebuilt); returns how many."""
        if not partitions:
            return 0
        slots = np.flatnonzero(np.isin(self._partition, list(partitions)))
        slots = [s for s in slots.tolist() if self._customer[s] is not None]
        for slot in slots:
            self._forget(slot)
        return len(slots)

    def evict(self, max_customers: int, durable_serial: int) -> int:
        """Forget least recently used customers beyond ``max_customers`` (down to 90% of it),
        only among those whose last batch (serial <= ``durable_serial``) Redis holds."""
        excess = len(self._slot_of) - max_customers
        if excess <= 0:
            return 0
        held = np.array(list(self._slot_of.values()), np.int64)
        held = held[self._used[held] <= durable_serial]
        count = min(len(held), excess + max_customers // 10)
        if count <= 0:
            return 0
        victims = held[np.argpartition(self._used[held], count - 1)[:count]]
        for slot in victims.tolist():
            self._forget(slot)
        return count

    def nbytes(self) -> int:
        """Bytes held: arrays (at capacity) plus the packed ids and the slot map (estimated)."""
        arrays = sum(
            getattr(self, name).nbytes
            for name in (
                "_rows",
                "_length",
                "_partition",
                "_used",
                "_seen_s",
                "_profile",
                "_has_profile",
                "_ptime",
                "_phash",
                "_exposure",
                "_vec",
                "_time",
                "_hash",
                "_kind",
                "_free",
            )
        )
        blobs = sum(len(b) + 33 for b in self._ids) + 8 * 3 * len(self._ids)
        return arrays + blobs + 100 * len(self._slot_of)

    def read(self, customer: str) -> WindowRecord | None:
        """The customer's window as held here (tests, the dashboard's view of a worker)."""
        slot = self._slot_of.get(customer)
        if slot is None:
            return None
        return unpack_window(self.records(np.array([slot]), {})[0][2])


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
