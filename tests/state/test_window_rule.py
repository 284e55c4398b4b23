"""The window rule (``state.window_rule``) and every path held to it.

``window_positions`` is the reference. The stream and training call it; the worker applies
it incrementally (``WindowTable``) and stores the result in Redis, by plain writes on one
Redis and through ``partition_fence.lua`` on a Redis Cluster, or in the in-memory twin. On
random event streams (duplicates, ties in time, late events, profiles, an owner restarting
from the stored state and getting its last batch again), the stored windows must equal the
reference over each customer's arrival history after every batch.
"""

import random

import numpy as np
import pytest

from crmrisk.state import (
    PartitionFence,
    PartitionWrite,
    WindowTable,
    right_padded,
    window_positions,
)
from crmrisk.state.memory import MemoryState
from tests.state.conftest import DIM, PDIM, appends

TOPIC = "crm.events"


def test_window_positions__latest_by_time_then_id_bytes_oldest_first():
    ids = ["e9", "e10", "e2", "e1"]
    assert window_positions(ids, [5, 5, 1, 7], [False] * 4, 3) == [1, 0, 3]
    assert window_positions(ids, [5, 5, 1, 7], [False] * 4, 0) == []


def test_window_positions__first_delivery_of_an_id_wins_and_profiles_are_apart():
    ids, times = ["a", "p", "b", "a", "c"], [10, 99, 20, 30, 25]
    profile = [False, True, False, False, False]
    assert window_positions(ids, times, profile, 5) == [0, 2, 4]
    assert window_positions(["x", "x"], [1, 2], [True, False], 5) == [1]  # apart: own ids


def test_right_padded__places_each_window_oldest_first_from_position_zero():
    rows, positions, mask = right_padded(np.array([3, 1]), 4)
    assert rows.tolist() == [0, 0, 0, 1] and positions.tolist() == [0, 1, 2, 0]
    assert mask.tolist() == [[True, True, True, False], [True, False, False, False]]


@pytest.fixture(params=["redis", "redis-script", "memory"])
def store(request, redis_client, redis_prefix):
    """Where the windows are kept: one Redis (plain writes under WATCH), the script path of a
    Redis Cluster (``partition_fence.lua``, forced on the one Redis), the in-memory twin."""
    if request.param == "memory":
        return MemoryState()
    fence = PartitionFence(redis_client, redis_prefix, 600, 0, 1000)
    fence._cluster = request.param == "redis-script"
    return fence


def _stream(rng, n):
    """Events of a few customers; an id always carries the same time (its content)."""
    times: dict[tuple[str, str], int] = {}
    items = []
    for _ in range(n):
        customer = f"c{rng.randrange(4)}"
        if rng.random() < 0.1:
            event_id, kind = f"p{rng.randrange(3)}", "profile"
        else:
            event_id, kind = f"e{rng.randrange(40)}", "bill"
        t = times.setdefault((customer, event_id), rng.randrange(50))
        items.append({"customer": customer, "id": event_id, "t": t, "kind": kind})
    return items


def _stored(store, items):
    """Each customer of ``items`` and the window record the store holds for it."""
    customers = sorted({i["customer"] for i in items})
    return zip(customers, store.read("credit", customers, [])[0], strict=True)


@pytest.mark.integration
@pytest.mark.parametrize("seed", range(3))
def test_stored_windows_equal_the_reference_on_random_streams(store, seed):
    rng = random.Random(seed)
    items = _stream(rng, 300)
    size = 5
    epoch = store.claim(TOPIC, 0, 1).epoch
    table, offset, at, last = WindowTable(size, DIM, PDIM, 3600), None, 0, []
    serial = 0

    def write(batch):
        nonlocal offset, serial
        serial += 1
        applied = table.apply(appends(batch), now_s=0.0, serial=serial)
        records = table.records(applied.slots, {0: epoch})
        new = (offset or 0) + len(batch)
        windows = [("credit", c, raw) for c, _, raw in records]
        assert store.write(TOPIC, [PartitionWrite(0, epoch, offset, new, windows)]) == []
        offset = new
        return applied

    while at < len(items):
        batch = items[at : at + rng.choice([1, 4, 19])]
        at += len(batch)
        write(batch)
        last = batch
        if rng.random() < 0.15:  # the owner restarts from the stored state, gets its batch again
            epoch = store.claim(TOPIC, 0, 1).epoch
            table = WindowTable(size, DIM, PDIM, 3600)
            for customer, record in _stored(store, items[:at]):
                table.load(customer, 0, record)
            offset -= len(last)
            again = write([{**i, "redelivered": True} for i in last])
            assert (again.status == -1).all()
        arrived = items[:at]
        for customer, record in _stored(store, arrived):
            history = [i for i in arrived if i["customer"] == customer]
            kept = window_positions(
                [i["id"] for i in history],
                [i["t"] for i in history],
                [i["kind"] == "profile" for i in history],
                size,
            )
            expected = [history[k] for k in kept]
            ids = [] if record is None else record.event_ids
            assert ids == [i["id"] for i in expected], (seed, at, customer)
            if expected:
                assert record.event_times_ms.tolist() == [i["t"] for i in expected]
                assert record.events[:, 0].tolist() == [float(i["t"]) for i in expected]
