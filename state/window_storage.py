"""The columnar storage of partition-owned windows, and its durable copy (window records).

Not an object per event: event vectors, times, content hashes and kind codes live in one pool
of rows (grown by doubling, rows reused through a free list), and each customer has a slot: a
row of W pool indexes, a length, its profile, and its event ids packed as NUL-terminated bytes
(the Redis record's layout). Memory is the pool (bytes per stored event: ``4 * event_dim +
20``) plus ``~4 * W + 4 * profile_dim + 250`` bytes per customer (``nbytes``), bounded by
``evict`` (least recently used customers whose state Redis holds). ``WindowTable``
(``state/window_table.py``) applies batches to it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from state.records import WindowRecord, pack_windows, unpack_window

__all__ = ["WindowStorage"]


class WindowStorage:
    """The windows of one domain's customers, for the partitions this worker owns: storage,
    loading from and packing to window records, forgetting customers.

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
