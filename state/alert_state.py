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

from crmrisk.state.customer_slots import CustomerSlots, grown
from crmrisk.state.errors import StateError
from crmrisk.state.keys import alert_key
from crmrisk.state.pipeline import round_trip
from crmrisk.state.records import AlertRecord, pack_alert, unpack_alert

__all__ = ["AlertState", "AlertStateStore", "AlertTable"]


@dataclass(frozen=True, slots=True)
class AlertState:
    """``armed`` False after an alert until the score falls below threshold - hysteresis."""

    armed: bool = True
    last_alert_s: float | None = None  # event time (epoch seconds) of the last alert


class AlertTable(CustomerSlots):
    """Alert states of one domain's customers held by their partition's owner (arrays)."""

    def __init__(self, ttl_s: float) -> None:
        super().__init__(ttl_s)
        self.armed = np.zeros(0, bool)
        self.last_s = np.zeros(0, np.float64)  # NaN: never fired

    def _grow_columns(self, size: int) -> None:
        self.armed = grown(self.armed, size, True)
        self.last_s = grown(self.last_s, size, np.nan)

    def _clear(self, slot: int) -> None:
        self.armed[slot], self.last_s[slot] = True, np.nan

    def load(self, customer: str, partition: int, state: AlertState) -> None:
        slot = self._slot_of.get(customer)
        if slot is None:
            slot = self._new_slot(customer, partition)
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
