"""The partition fence contract: claims, fenced writes, lost state, the per-key guard.

Every contract test runs against real Redis (``state.PartitionFence``) and against the
in-memory twin (``state.memory.MemoryState``) that the fast pipeline tests use (the ``state``
fixture, ``tests/state/conftest.py``).
"""

import pytest

from crmrisk.state import PartitionFence, PartitionWrite, partition_fence
from crmrisk.state.keys import window_key
from crmrisk.state.memory import MemoryState
from crmrisk.state.records import pack_alert, pack_window

pytestmark = pytest.mark.integration

import numpy as np  # noqa: E402

TOPIC = "crm.events"


def _window(partition, epoch, ids=("a",)):
    n = len(ids)
    return pack_window(
        partition,
        epoch,
        b"".join(i.encode() + b"\0" for i in ids),
        b"bill\0" * n,
        np.arange(n, dtype=np.int64),
        np.zeros(n, np.uint64),
        np.ones((n, 2), np.float32),
        None,
        0,
        None,
        0,
        None,
    )


def _write(state, partition, epoch, expected, new, ids=("a",), customer="c1"):
    return state.write(
        TOPIC,
        [
            PartitionWrite(
                partition,
                epoch,
                expected,
                new,
                windows=[("credit", customer, _window(partition, epoch, ids))],
                alerts=[("credit", customer, pack_alert(partition, epoch, False, 5.0))],
                scores=[("credit", customer, b'{"p": 1}')],
            )
        ],
    )


def test_claim__raises_the_epoch_and_tells_the_next_offset(state):
    first = state.claim(TOPIC, 0, 1)
    assert first.applied is None
    assert _write(state, 0, first.epoch, None, 10) == []
    second = state.claim(TOPIC, 0, 1)
    assert second.epoch == first.epoch + 1 and second.applied == 10
    assert state.claim(TOPIC, 1, 1).applied is None  # partitions are independent
    assert state.applied(TOPIC, [0, 1]) == {0: 10, 1: None}


def test_write__chains_offsets_and_a_retried_write_passes(state):
    epoch = state.claim(TOPIC, 0, 1).epoch
    assert _write(state, 0, epoch, None, 5) == []
    assert _write(state, 0, epoch, 5, 9, ids=("a", "b")) == []
    assert _write(state, 0, epoch, 5, 9, ids=("a", "b")) == []  # the reply was lost: again
    windows, alerts = state.read("credit", ["c1", "nobody"], ["c1"])
    assert windows[0].event_ids == ["a", "b"] and windows[1] is None
    assert (alerts[0].armed, alerts[0].last_alert_s) == (False, 5.0)


def test_write__of_an_older_owner_is_fenced_and_writes_nothing(state):
    old = state.claim(TOPIC, 0, 1).epoch
    assert _write(state, 0, old, None, 5) == []
    new = state.claim(TOPIC, 0, 1).epoch
    (refusal,) = _write(state, 0, old, 5, 9, ids=("a", "zombie"))
    assert (refusal.partition, refusal.reason, refusal.applied) == (0, "fenced", 5)
    assert state.read("credit", ["c1"], [])[0][0].event_ids == ["a"]
    assert _write(state, 0, new, 5, 9, ids=("a", "b")) == []


def test_write__after_redis_lost_the_partition_is_refused_as_lost(state, redis_client):
    epoch = state.claim(TOPIC, 0, 1).epoch
    assert _write(state, 0, epoch, None, 5) == []
    if isinstance(state, MemoryState):
        state.flush()
    else:
        for key in redis_client.scan_iter(f"{state._prefix}:*"):
            redis_client.delete(key)  # (fences included)
    (refusal,) = _write(state, 0, epoch, 5, 9)
    assert (refusal.reason, refusal.applied) == ("lost", None)


def test_write__an_offset_that_is_not_the_expected_one_is_lost(state):
    epoch = state.claim(TOPIC, 0, 1).epoch
    assert _write(state, 0, epoch, None, 5) == []
    (refusal,) = _write(state, 0, epoch, 7, 9)  # e.g. Redis rolled back to an older snapshot
    assert (refusal.reason, refusal.applied) == ("lost", 5)


def test_clear__forgets_offsets_so_the_next_owner_rebuilds(state):
    epoch = state.claim(TOPIC, 3, 1).epoch
    _write(state, 3, epoch, None, 5)
    state.clear(TOPIC, [3])
    assert state.claim(TOPIC, 3, 1).applied is None


def test_guard__a_key_written_by_a_newer_owner_is_not_replaced_without_a_fence(
    redis_client, redis_prefix
):
    """What a Redis Cluster slot's call does (no fence in it): the guard alone decides."""
    fence = PartitionFence(redis_client, redis_prefix, 600, 0, 1000)
    key = window_key(redis_prefix, "credit", "c1")

    def raw_write(epoch, ids):
        call = [1, key, "write", 600, 0, 0, 0, epoch, 1, _window(0, epoch, ids)]
        fence._run([call])

    raw_write(5, ("new",))
    raw_write(4, ("stale",))
    assert fence.read("credit", ["c1"], [])[0][0].event_ids == ["new"]
    raw_write(6, ("newer",))
    assert fence.read("credit", ["c1"], [])[0][0].event_ids == ["newer"]
    assert 0 < redis_client.ttl(key) <= 600


def test_claim__of_an_older_generation_is_refused(state):
    new = state.claim(TOPIC, 0, 7)
    _write(state, 0, new.epoch, None, 5)
    zombie = state.claim(TOPIC, 0, 6)  # a member of the previous generation, awake again
    assert (zombie.epoch, zombie.applied) == (0, 5)
    assert _write(state, 0, new.epoch, 5, 8) == []  # the new owner was not disturbed
    assert state.claim(TOPIC, 0, 7).epoch == new.epoch + 1  # same generation: a re-claim


def test_write__a_claim_between_the_check_and_the_write_aborts_it(redis_client, redis_prefix):
    """The WATCH of one Redis: a new owner's claim after the fence was read, before the write."""
    fence = PartitionFence(redis_client, redis_prefix, 600, 0, 1000)
    epoch = fence.claim(TOPIC, 0, 1).epoch
    assert _write(fence, 0, epoch, None, 5) == []
    exchange = partition_fence._exchange
    calls = []

    def claim_in_between(connection, commands):
        replies = exchange(connection, commands)
        if commands[0][0] == "WATCH" and not calls:
            calls.append(1)
            PartitionFence(redis_client, redis_prefix, 600, 0, 1000).claim(TOPIC, 0, 2)
        return replies

    partition_fence._exchange = claim_in_between
    try:
        (refusal,) = _write(fence, 0, epoch, 5, 9, ids=("a", "zombie"))
    finally:
        partition_fence._exchange = exchange
    assert refusal.reason == "fenced"
    assert fence.read("credit", ["c1"], [])[0][0].event_ids == ["a"]
