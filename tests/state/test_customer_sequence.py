"""The sequence store contract: order, idempotence, window, profile, batch twins.

Every contract test runs against real Redis and against the in-memory twin
(``state.memory.MemorySequenceStore``), which the fast pipeline tests use; Redis-only details
(TTL, the packed hash, a lost script) run against Redis alone.
"""

import random
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from state import Append, AppendStatus, CustomerSequenceStore
from state.memory import MemorySequenceStore
from stream.events import CustomerEvent
from stream.transform import event_time_ms, window

pytestmark = pytest.mark.integration

DIM = 3


@pytest.fixture
def prefix(redis_client):
    prefix = f"test-seq-{uuid.uuid4().hex[:8]}"
    yield prefix
    for key in redis_client.scan_iter(f"{prefix}:*"):
        redis_client.delete(key)


def _store(redis_client, prefix, window_size=4, ttl_s=600):
    return CustomerSequenceStore(redis_client, prefix, window=window_size, ttl_s=ttl_s)


@pytest.fixture(params=["redis", "memory"])
def make(request, redis_client, prefix):
    """A factory of empty stores of one backend: ``make(window_size=4)``."""
    if request.param == "memory":
        return lambda window_size=4, tag="": MemorySequenceStore(window_size)
    return lambda window_size=4, tag="": _store(redis_client, prefix + tag, window_size)


def _append(event_id, t_ms, offset=None, customer="c1", kind="bill", value=None):
    vector = np.full(DIM, t_ms if value is None else value, dtype=np.float32)
    source = None if offset is None else ("crm.events", 0, offset)
    return Append(customer, "credit", event_id, t_ms, kind, vector, source)


def test_append__orders_by_event_time_and_places_late_events(make):
    store = make()
    for i, (event_id, t) in enumerate([("b", 20), ("c", 30), ("a", 10)]):
        result = store.append(_append(event_id, t, offset=i))
    assert result.status is AppendStatus.APPLIED
    seq = result.sequence
    assert seq.event_ids == ["a", "b", "c"]
    assert seq.event_times_ms.tolist() == [10, 20, 30]
    assert seq.events[:, 0].tolist() == [10, 20, 30]
    assert seq.events.shape == (3, DIM)
    assert seq.kinds == ["bill"] * 3


def test_append__ties_in_time_are_ordered_by_event_id(make):
    store = make()
    store.append(_append("z", 5))
    seq = store.append(_append("m", 5)).sequence
    assert seq.event_ids == ["m", "z"]


def test_append__duplicate_event_id_is_stored_once(make):
    store = make()
    store.append(_append("a", 10, offset=0))
    again = store.append(_append("a", 10, offset=1, value=99.0))
    assert again.status is AppendStatus.DUPLICATE
    assert again.sequence.event_ids == ["a"]
    assert again.sequence.events[0, 0] == 10.0


def test_append__refuses_an_offset_already_applied(make):
    store = make()
    store.append(_append("a", 10, offset=5))
    replay = store.append(_append("b", 20, offset=5))
    older = store.append(_append("c", 30, offset=4))
    assert (replay.status, older.status) == (AppendStatus.REDELIVERED,) * 2
    assert store.read("c1", "credit").event_ids == ["a"]
    # The guard is per topic partition: another partition's offsets are independent.
    other = Append("c1", "credit", "d", 40, "bill", np.zeros(DIM, np.float32), ("crm.events", 1, 0))
    assert store.append(other).status is AppendStatus.APPLIED


def test_append__keeps_only_the_latest_window(make):
    store = make(window_size=3)
    for i in range(5):
        seq = store.append(_append(f"e{i}", 10 * i, offset=i)).sequence
    assert seq.event_ids == ["e2", "e3", "e4"]
    late = store.append(_append("old", 1, offset=9))
    assert late.status is AppendStatus.OUTSIDE_WINDOW
    assert late.sequence.event_ids == ["e2", "e3", "e4"]
    assert late.sequence.events.shape == (3, DIM)


def test_append__evicted_events_leave_no_vectors_behind(redis_client, prefix):
    store = _store(redis_client, prefix, window_size=3)
    for i in range(5):
        store.append(_append(f"e{i}", 10 * i, offset=i))
    assert len(redis_client.hget(f"{prefix}:seq:credit:{{c1}}", "vs")) == 3 * DIM * 4


def test_append__profile_is_kept_apart_latest_by_time_with_exposure(make):
    store = make()
    first = Append("c1", "credit", "p1", 100, "profile", np.ones(2, np.float32), exposure=5e4)
    older = Append("c1", "credit", "p0", 50, "profile", np.zeros(2, np.float32), exposure=1.0)
    store.append(first)
    seq = store.append(older).sequence
    assert len(seq) == 0
    assert seq.profile.tolist() == [1.0, 1.0]
    assert seq.exposure == 5e4
    assert store.append(first).status is AppendStatus.DUPLICATE


def test_append__sets_the_ttl(redis_client, prefix):
    store = _store(redis_client, prefix, ttl_s=123)
    store.append(_append("a", 10))
    assert 0 < redis_client.ttl(f"{prefix}:seq:credit:{{c1}}") <= 123


def test_read__unknown_customer_is_empty(make):
    seq = make().read("nobody", "credit")
    assert len(seq) == 0
    assert seq.profile is None
    assert seq.exposure is None


def test_append_many__agrees_with_append_one_at_a_time(make):
    rng = random.Random(3)
    items = [
        _append(f"e{rng.randrange(30)}", rng.randrange(100), offset=i, customer=f"c{i % 3}")
        for i in range(60)
    ]
    items += [  # one batch holding the same customer's profile and events, and a replay
        Append("c0", "credit", "p", 5, "profile", np.ones(2, np.float32), ("crm.events", 1, 0)),
        _append("late", 1, offset=61, customer="c0"),
        _append("again", 200, offset=3, customer="c1"),
    ]
    one, many = make(tag="-one"), make(tag="-many")
    singles = [one.append(item) for item in items]
    batched = many.append_many(items)
    assert [r.status for r in singles] == [r.status for r in batched]
    for a, b in zip(singles, batched, strict=True):
        assert a.sequence.event_ids == b.sequence.event_ids
        np.testing.assert_array_equal(a.sequence.events, b.sequence.events)
        assert (a.sequence.profile is None) == (b.sequence.profile is None)


def test_redis_and_memory_stores_agree_on_a_random_stream(redis_client, prefix):
    """The twin is only worth its tests if it folds exactly like the script."""
    rng = random.Random(11)
    items = []
    for i in range(300):
        customer = f"c{rng.randrange(8)}"
        if rng.random() < 0.1:
            vector = np.full(2, float(i), np.float32)
            items.append(
                Append(customer, "credit", f"p{rng.randrange(4)}", rng.randrange(100), "profile",
                       vector, ("crm.events", rng.randrange(2), i), exposure=float(i))
            )  # fmt: skip
        else:
            offset = i if rng.random() < 0.9 else rng.randrange(i + 1)  # some replays
            item = _append(f"e{rng.randrange(60)}", rng.randrange(100), offset, customer=customer)
            if rng.random() < 0.8:  # most with a content hash, of two possible contents
                item = replace(item, content_hash=bytes([rng.randrange(2)]) * 8)
            items.append(item)
    redis_store, memory = _store(redis_client, prefix, window_size=5), MemorySequenceStore(5)
    seen = set()
    for start in range(0, len(items), 37):
        chunk = items[start : start + 37]
        for a, b in zip(redis_store.append_many(chunk), memory.append_many(chunk), strict=True):
            seen.add(a.status)
            assert a.status is b.status
            assert a.stored_hash == b.stored_hash
            assert a.sequence.event_ids == b.sequence.event_ids
            assert a.sequence.event_times_ms.tolist() == b.sequence.event_times_ms.tolist()
            np.testing.assert_array_equal(a.sequence.events, b.sequence.events)
            assert a.sequence.exposure == b.sequence.exposure
            if a.sequence.profile is None:
                assert b.sequence.profile is None
            else:
                np.testing.assert_array_equal(a.sequence.profile, b.sequence.profile)
    assert seen == set(AppendStatus) - {AppendStatus.READ}  # every outcome was exercised


def test_read_many__agrees_with_read(make):
    store = make()
    store.append_many([_append("a", 1, customer="x"), _append("b", 2, customer="y")])
    pairs = [("x", "credit"), ("y", "credit"), ("z", "credit")]
    assert [s.event_ids for s in store.read_many(pairs)] == [
        store.read(c, d).event_ids for c, d in pairs
    ]


def test_fold__equals_the_window_recomputed_from_the_full_history(make):
    """Random arrival order with duplicates: Redis folding == ``transform.window`` of history."""
    rng = random.Random(7)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    history = [
        CustomerEvent(
            event_id=f"e{i}",
            customer_id="c1",
            event_time=start + timedelta(minutes=rng.randrange(40)),
            domain="credit",
            kind="bill",
        )
        for i in range(25)
    ]
    arrivals = history + rng.sample(history, 8)
    rng.shuffle(arrivals)
    store = make(6)
    for offset, event in enumerate(arrivals):
        t = event_time_ms(event)
        store.append(_append(event.event_id, t, offset=offset))
    expected = window(arrivals, 6)
    got = store.read("c1", "credit")
    assert got.event_ids == [e.event_id for e in expected]
    assert got.event_times_ms.tolist() == [event_time_ms(e) for e in expected]


def test_append_many__recovers_when_redis_lost_the_script(redis_client, prefix):
    store = _store(redis_client, prefix)
    store._sha = "0" * 40  # as after a Redis restart or SCRIPT FLUSH: NOSCRIPT
    assert store.append(_append("a", 10)).status is AppendStatus.APPLIED
    assert store.read("c1", "credit").event_ids == ["a"]


def test_append__same_event_id_other_content_is_a_conflict_not_a_duplicate(make):
    store = make()
    first = Append(
        "c1", "credit", "a", 10, "bill", np.ones(DIM, np.float32), content_hash=b"h1" * 4
    )
    same = Append("c1", "credit", "a", 10, "bill", np.ones(DIM, np.float32), content_hash=b"h1" * 4)
    other = Append(
        "c1", "credit", "a", 10, "bill", np.ones(DIM, np.float32), content_hash=b"h2" * 4
    )
    unknown = Append("c1", "credit", "a", 10, "bill", np.ones(DIM, np.float32))
    assert store.append(first).status is AppendStatus.APPLIED
    assert store.append(same).status is AppendStatus.DUPLICATE
    clash = store.append(other)
    assert clash.status is AppendStatus.CONFLICT and clash.stored_hash == b"h1" * 4
    assert clash.sequence.event_ids == ["a"]
    assert store.append(unknown).status is AppendStatus.DUPLICATE  # no hash: cannot tell
    # A profile too, and an event stored before hashes existed never conflicts.
    profile = Append(
        "c1", "credit", "p", 5, "profile", np.ones(2, np.float32), content_hash=b"p" * 8
    )
    store.append(profile)
    changed = Append(
        "c1", "credit", "p", 5, "profile", np.ones(2, np.float32), content_hash=b"q" * 8
    )
    assert store.append(changed).status is AppendStatus.CONFLICT
    legacy = Append("c1", "credit", "b", 20, "bill", np.ones(DIM, np.float32))
    store.append(legacy)
    rehash = Append(
        "c1", "credit", "b", 20, "bill", np.ones(DIM, np.float32), content_hash=b"x" * 8
    )
    assert store.append(rehash).status is AppendStatus.DUPLICATE
