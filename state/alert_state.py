"""Alert states: is a customer's alert armed, and when did it last fire (for the cool-down).

``AlertTable`` holds them for the customers of the partitions a worker owns, as arrays, next
to their windows; changed ones are written to Redis with each batch (``state/partition_fence``)
as alert records (``state/records.py``), which ``AlertStateStore`` reads back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import redis

from state.errors import StateError
from state.keys import alert_key
from state.pipeline import round_trip
from state.records import AlertRecord, pack_alert, unpack_alert

__all__ = ["AlertState", "AlertStateStore", "AlertTable"]


@dataclass(frozen=True, slots=True)
class AlertState:
    """``armed`` False after an alert until the score falls below threshold - hysteresis."""

    armed: bool = True
    last_alert_s: float | None = None  # event time (epoch seconds) of the last alert


class AlertTable:
    """Alert states of one domain's customers held by their partition's owner (arrays)."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._slot_of: dict[str, int] = {}
        self._customer: list[str | None] = []
        self._free: list[int] = []
        self.armed = np.zeros(0, bool)
        self.last_s = np.zeros(0, np.float64)  # NaN: never fired
        self._partition = np.zeros(0, np.int32)
        self._used = np.zeros(0, np.int64)
        self._seen_s = np.zeros(0, np.float64)

    def __len__(self) -> int:
        return len(self._slot_of)

    def _grow(self) -> None:
        old = len(self._customer)
        size = max(256, 2 * old)
        for name, fill in (
            ("armed", True),
            ("last_s", np.nan),
            ("_partition", -1),
            ("_used", 0),
            ("_seen_s", 0.0),
        ):
            array = getattr(self, name)
            grown = np.full(size, fill, array.dtype)
            grown[:old] = array
            setattr(self, name, grown)
        self._customer += [None] * (size - old)
        self._free.extend(range(size - 1, old - 1, -1))

    def missing(self, customers: Sequence[str], now_s: float) -> list[str]:
        """Customers not held here, each once (a customer unused for ``ttl_s`` is forgotten)."""
        out = []
        for customer in dict.fromkeys(customers):
            slot = self._slot_of.get(customer)
            if slot is not None and now_s - self._seen_s[slot] > self.ttl_s:
                self._forget(slot)
                slot = None
            if slot is None:
                out.append(customer)
        return out

    def load(self, customer: str, partition: int, state: AlertState) -> None:
        slot = self._slot_of.get(customer)
        if slot is None:
            if not self._free:
                self._grow()
            slot = self._free.pop()
            self._slot_of[customer] = slot
            self._customer[slot] = customer
        self._partition[slot] = partition
        self.armed[slot] = state.armed
        self.last_s[slot] = math.nan if state.last_alert_s is None else state.last_alert_s

    def slots(
        self, customers: Sequence[str], partitions: np.ndarray, now_s: float, serial: int
    ) -> np.ndarray:
        """Slots of held customers (a customer never seen starts armed)."""
        for customer, partition in zip(customers, partitions.tolist(), strict=True):
            if customer not in self._slot_of:
                self.load(customer, partition, AlertState())
        slots = np.fromiter((self._slot_of[c] for c in customers), np.int64, len(customers))
        self._partition[slots] = partitions
        self._used[slots] = serial
        self._seen_s[slots] = now_s
        return slots

    def state(self, customer: str) -> AlertState | None:
        slot = self._slot_of.get(customer)
        if slot is None:
            return None
        last = float(self.last_s[slot])
        return AlertState(bool(self.armed[slot]), None if math.isnan(last) else last)

    def records(self, slots: np.ndarray, epochs: dict[int, int]) -> list[tuple[str, int, bytes]]:
        """(customer, partition, alert record) of each slot once, as the state is now."""
        out = []
        for slot in np.unique(slots).tolist():
            customer = self._customer[slot]
            if customer is None:
                continue
            partition = int(self._partition[slot])
            last = float(self.last_s[slot])
            record = pack_alert(
                partition,
                epochs.get(partition, 0),
                bool(self.armed[slot]),
                None if math.isnan(last) else last,
            )
            out.append((customer, partition, record))
        return out

    def _forget(self, slot: int) -> None:
        customer = self._customer[slot]
        if customer is not None:
            del self._slot_of[customer]
        self._customer[slot] = None
        self._partition[slot] = -1
        self.armed[slot], self.last_s[slot] = True, np.nan
        self._free.append(slot)

    def drop_partitions(self, partitions: Sequence[int]) -> int:
        slots = [
            s
            for s in np.flatnonzero(np.isin(self._partition, list(partitions))).tolist()
            if self._customer[s] is not None
        ]
        for slot in slots:
            self._forget(slot)
        return len(slots)

    def evict(self, max_customers: int, durable_serial: int) -> int:
        """As ``WindowTable.evict``."""
        excess = len(self._slot_of) - max_customers
        if excess <= 0:
            return 0
        held = np.array(list(self._slot_of.values()), np.int64)
        held = held[self._used[held] <= durable_serial]
        count = min(len(held), excess + max_customers // 10)
        if count <= 0:
            return 0
        for slot in held[np.argpartition(self._used[held], count - 1)[:count]].tolist():
            self._forget(slot)
        return count


class AlertStateStore:
    """Reads the alert states that workers wrote to Redis (unknown customers are armed)."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._client = client
        self._prefix = prefix

    def read(self, customer_id: str, domain: str) -> AlertState:
        return self.read_many([(customer_id, domain)])[0]

    def read_many(self, customers: Sequence[tuple[str, str]]) -> list[AlertState]:
        if not customers:
            return []
        try:
            replies = round_trip(
                self._client, [["GET", alert_key(self._prefix, d, c)] for c, d in customers]
            )
        except redis.RedisError as exc:
            raise StateError(f"reading {len(customers)} alert states failed: {exc}") from exc
        return [_state(None if raw is None else unpack_alert(raw)) for raw in replies]

    def read_records(self, domain: str, customers: Sequence[str]) -> list[AlertRecord | None]:
        """The raw records (with partition and epoch), for a worker loading its customers."""
        if not customers:
            return []
        try:
            replies = round_trip(
                self._client, [["GET", alert_key(self._prefix, domain, c)] for c in customers]
            )
        except redis.RedisError as exc:
            raise StateError(f"reading {len(customers)} alert states failed: {exc}") from exc
        return [None if raw is None else unpack_alert(raw) for raw in replies]


def _state(record: AlertRecord | None) -> AlertState:
    if record is None:
        return AlertState()
    return AlertState(record.armed, record.last_alert_s)
