"""Customers held by their partition's owner, one slot (a row of arrays) each.

Both kinds of partition-owned state, windows (``state/window_storage.py``) and alert states
(``state/alert_state.py``), keep their customers' values in arrays indexed by slot. This is
their common part: the customer <-> slot map, each slot's partition, its last use (the batch
serial, for least-recently-used eviction) and wall time (for the TTL), the free list, growth
by doubling, and forgetting customers (expired, evicted, or of a revoked partition).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["CustomerSlots", "grown"]


def grown(array: np.ndarray, size: int, fill: object = 0) -> np.ndarray:
    """``array`` with ``size`` rows: its rows first, then rows of ``fill``."""
    new = np.full((size, *array.shape[1:]), fill, array.dtype)
    new[: array.shape[0]] = array
    return new


class CustomerSlots:
    """The slot map of one domain's customers; subclasses keep their values by slot.

    A subclass grows its own arrays in ``_grow_columns`` and resets a slot's values in
    ``_clear`` (called before a slot is forgotten).
    """

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._slot_of: dict[str, int] = {}
        self._customer: list[str | None] = []
        self._free_slots: list[int] = []
        self._partition = np.zeros(0, np.int32)
        self._used = np.zeros(0, np.int64)  # batch serial of the last use (LRU)
        self._seen_s = np.zeros(0, np.float64)  # wall time of the last use (TTL)

    def __len__(self) -> int:
        return len(self._slot_of)

    def __contains__(self, customer: str) -> bool:
        return customer in self._slot_of

    def _grow_columns(self, size: int) -> None:
        """Grow the subclass's per-slot arrays to ``size`` rows."""

    def _clear(self, slot: int) -> None:
        """Reset the subclass's values of ``slot``."""

    def _grow_slots(self) -> None:
        old = len(self._customer)
        size = max(256, 2 * old)
        self._partition = grown(self._partition, size, -1)
        self._used = grown(self._used, size)
        self._seen_s = grown(self._seen_s, size)
        self._grow_columns(size)
        self._customer += [None] * (size - old)
        self._free_slots.extend(range(size - 1, old - 1, -1))

    def _new_slot(self, customer: str, partition: int) -> int:
        if not self._free_slots:
            self._grow_slots()
        slot = self._free_slots.pop()
        self._slot_of[customer] = slot
        self._customer[slot] = customer
        self._partition[slot] = partition
        return slot

    def _forget(self, slot: int) -> None:
        self._clear(slot)
        customer = self._customer[slot]
        if customer is not None:
            del self._slot_of[customer]
        self._customer[slot] = None
        self._partition[slot] = -1
        self._free_slots.append(slot)

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
