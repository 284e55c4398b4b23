"""The columnar storage of partition-owned windows, and its durable copy (window records).

Not an object per event: event vectors, times, content hashes and kind codes live in one pool
of rows (grown by doubling, rows reused through a free list), and each customer has a slot: a
row of W pool indexes, a length, its profile, and its event ids packed as NUL-terminated bytes
(the Redis record's layout). Memory is the pool (bytes per stored event: ``4 * event_dim +
20``) plus ``~4 * W + 4 * profile_dim + 250`` bytes per customer (``nbytes``), bounded by
``evict`` (least recently used customers whose state Redis holds). The slot map, eviction and
TTL are ``CustomerSlots``'s (``state/customer_slots.py``, shared with the alert states);
``WindowTable`` (``state/window_table.py``) applies batches to this storage.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from crmrisk.state.customer_slots import CustomerSlots, grown
from crmrisk.state.records import WindowRecord, pack_windows, unpack_window

__all__ = ["WindowStorage"]


class WindowStorage(CustomerSlots):
    """The windows of one domain's customers, for the partitions this worker owns: storage,
    loading from and packing to window records.

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
        super().__init__(ttl_s)
        self.window, self.event_dim, self.profile_dim = window, event_dim, profile_dim
        self.kinds: list[str] = []
        self._kind_code: dict[str, int] = {}
        self._rows = np.zeros((0, window), np.int32)
        self._length = np.zeros(0, np.int32)
        self._profile = np.zeros((0, profile_dim), np.float32)
        self._has_profile = np.zeros(0, bool)
        self._ptime = np.zeros(0, np.int64)
        self._phash = np.zeros(0, np.uint64)
        self._exposure = np.zeros(0, np.float64)
        self._ids: list[bytes] = []
        self._pid: list[str | None] = []
        self._grow_slots()
        self._vec = np.zeros((0, event_dim), np.float32)
        self._time = np.zeros(0, np.int64)
        self._hash = np.zeros(0, np.uint64)
        self._kind = np.zeros(0, np.int32)
        self._free = np.zeros(0, np.int32)
        self._nfree = 0
        self._grow_pool(1024)

    # -- storage ----------------------------------------------------------------------------

    def _grow_columns(self, size: int) -> None:
        self._rows = grown(self._rows, size, -1)
        self._length = grown(self._length, size)
        self._profile = grown(self._profile, size)
        self._has_profile = grown(self._has_profile, size)
        self._ptime = grown(self._ptime, size)
        self._phash = grown(self._phash, size)
        self._exposure = grown(self._exposure, size, np.nan)
        self._ids += [b""] * (size - len(self._ids))
        self._pid += [None] * (size - len(self._pid))

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

    def _kind_codes(self, kinds: Sequence[str]) -> np.ndarray:
        codes = self._kind_code
        for kind in set(kinds) - codes.keys():
            codes[kind] = len(self.kinds)
            self.kinds.append(kind)
        return np.fromiter((codes[k] for k in kinds), np.int32, len(kinds))

    # -- the owner's view -------------------------------------------------------------------

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
