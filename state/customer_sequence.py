"""Reading customers' windows from Redis: what workers wrote there, for everyone else.

The owner of a partition keeps its customers' windows in memory (``state/window_table.py``) and
writes each changed one to Redis with its batch (``state/partition_fence.py``) as a window
record (``state/records.py``). This store reads them back: a restarted or new owner loading
its customers, ``crmrisk score``, the dashboard and the tests. One round trip for many.
"""

from __future__ import annotations

from collections.abc import Sequence as Seq
from dataclasses import dataclass

import numpy as np
import redis

from crmrisk.state.errors import StateError
from crmrisk.state.keys import window_key
from crmrisk.state.pipeline import round_trip
from crmrisk.state.records import WindowRecord, unpack_window

__all__ = ["CustomerSequence", "CustomerSequenceStore", "as_sequence"]


@dataclass(frozen=True, slots=True)
class CustomerSequence:
    """A customer's window: ``events[t]`` is the t-th oldest event; ``profile`` None if unseen."""

    event_ids: list[str]
    event_times_ms: np.ndarray  # int64 (L,)
    kinds: list[str]
    events: np.ndarray  # float32 (L, event_dim)
    profile: np.ndarray | None  # float32 (profile_dim,)
    exposure: float | None = None  # from the latest profile, when the domain has one

    def __len__(self) -> int:
        return len(self.event_ids)


def as_sequence(record: WindowRecord | None) -> CustomerSequence:
    """A window record as a sequence (an empty one for a customer Redis does not know)."""
    if record is None:
        return CustomerSequence([], np.zeros(0, np.int64), [], np.zeros((0, 0), np.float32), None)
    return CustomerSequence(
        event_ids=record.event_ids,
        event_times_ms=record.event_times_ms,
        kinds=record.kinds,
        events=record.events,
        profile=record.profile,
        exposure=record.exposure,
    )


class CustomerSequenceStore:
    """Windows in Redis, one record per customer and domain.

    Parameters
    ----------
    client
        A ``redis.Redis`` (or cluster) client created with ``decode_responses=False``.
    prefix
        Key prefix shared by every store of one deployment (``Settings.redis.key_prefix``).
    """

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._client = client
        self._prefix = prefix

    def read(self, customer_id: str, domain: str) -> CustomerSequence:
        """The customer's current window (empty when unknown or expired)."""
        return self.read_many([(customer_id, domain)])[0]

    def read_many(self, customers: Seq[tuple[str, str]]) -> list[CustomerSequence]:
        """Windows of many (customer_id, domain) pairs in one round trip."""
        keys = [window_key(self._prefix, d, c) for c, d in customers]
        return [as_sequence(r) for r in self._records(keys)]

    def read_records(self, domain: str, customers: Seq[str]) -> list[WindowRecord | None]:
        """The raw records (with partition and epoch), for a worker loading its customers."""
        return self._records([window_key(self._prefix, domain, c) for c in customers])

    def forget(self, customer_id: str, domain: str) -> None:
        """Drop a customer's window and profile (GDPR erasure, tests)."""
        try:
            self._client.delete(window_key(self._prefix, domain, customer_id))
        except redis.RedisError as exc:
            raise StateError(f"deleting the sequence of {customer_id!r} failed: {exc}") from exc

    def _records(self, keys: list[str]) -> list[WindowRecord | None]:
        if not keys:
            return []
        try:
            replies = round_trip(self._client, [["GET", key] for key in keys])
        except redis.RedisError as exc:
            raise StateError(f"reading {len(keys)} windows failed: {exc}") from exc
        return [None if raw is None else unpack_window(raw) for raw in replies]
