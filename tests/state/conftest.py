"""Helpers shared by the state tests: the partition state on Redis and on its twin, and
batches of events written as dicts."""

from __future__ import annotations

import numpy as np
import pytest

from crmrisk.state import Appends, PartitionFence, WindowTable
from crmrisk.state.memory import MemoryState

DIM, PDIM = 3, 2


@pytest.fixture(params=["redis", "memory"])
def state(request, redis_client, redis_prefix):
    """The partition state: real Redis (``PartitionFence``) and the in-memory twin."""
    if request.param == "memory":
        return MemoryState()
    return PartitionFence(
        redis_client, redis_prefix, ttl_s=600, wait_replicas=0, wait_timeout_ms=1000
    )


def appends(items) -> Appends:
    """``items``: dicts with customer, id, t and optional kind, value, hash, exposure, part,
    redelivered."""
    n = len(items)
    vectors = np.zeros((n, DIM), np.float32)
    profiles = np.zeros((n, PDIM), np.float32)
    for i, item in enumerate(items):
        value = item.get("value", item["t"])
        if item.get("kind") == "profile":
            profiles[i] = value
        else:
            vectors[i] = value
    return Appends(
        customers=[i.get("customer", "c1") for i in items],
        event_ids=[i["id"] for i in items],
        times_ms=np.array([i["t"] for i in items], np.int64),
        kinds=[i.get("kind", "bill") for i in items],
        vectors=vectors,
        profiles=profiles,
        is_profile=np.array([i.get("kind") == "profile" for i in items], bool),
        hashes=np.array([i.get("hash", 0) for i in items], np.uint64),
        exposure=np.array([i.get("exposure", np.nan) for i in items], np.float64),
        partitions=np.array([i.get("part", 0) for i in items], np.int32),
        redelivered=np.array([i.get("redelivered", False) for i in items], bool),
    )


def new_table(window=4) -> WindowTable:
    return WindowTable(window, DIM, PDIM, ttl_s=3600)


def apply(table, *items, serial=1):
    return table.apply(appends(list(items)), now_s=0.0, serial=serial)


def ids(table, customer="c1"):
    record = table.read(customer)
    return [] if record is None else record.event_ids


def windows_of(applied):
    """Per event index: (event ids, first feature per event) of the window it was scored with."""
    w = applied.windows
    return {
        int(i): (w.event_ids(b), w.events[b, : int(w.lengths[b]), 0].tolist())
        for b, i in enumerate(applied.scored)
    }
