"""The window rule, as the partition owner applies it (``state.windows.WindowTable``).

A plain per-event reference (``_Reference``: sorted lists, the rule as the docstring states it)
is the oracle; the table must agree with it event by event on random streams, batch by batch,
and with ``stream.transform.window`` over whole histories.
"""

import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from state import Appends, AppendStatus, Windows, WindowTable
from state.records import unpack_window
from stream.events import CustomerEvent
from stream.transform import event_time_ms, window

DIM, PDIM = 3, 2


def _appends(items):
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


def _table(window=4):
    return WindowTable(window, DIM, PDIM, ttl_s=3600)


def _apply(table, *items, serial=1):
    return table.apply(_appends(list(items)), now_s=0.0, serial=serial)


def _ids(table, customer="c1"):
    record = table.read(customer)
    return [] if record is None else record.event_ids


def _windows_of(applied):
    """Per event index: (event ids, first feature per event) of the window it was scored with."""
    w = applied.windows
    return {
        int(i): (w.event_ids(b), w.events[b, : int(w.lengths[b]), 0].tolist())
        for b, i in enumerate(applied.scored)
    }


def test_apply__orders_by_event_time_and_places_late_events():
    table = _table()
    for event_id, t in [("b", 20), ("c", 30), ("a", 10)]:
        applied = _apply(table, {"id": event_id, "t": t})
    assert applied.status.tolist() == [AppendStatus.APPLIED]
    assert _windows_of(applied)[0] == (["a", "b", "c"], [10.0, 20.0, 30.0])
    record = table.read("c1")
    assert record.event_times_ms.tolist() == [10, 20, 30]
    assert record.kinds == ["bill"] * 3


def test_apply__ties_in_time_are_ordered_by_event_id():
    table = _table()
    _apply(table, {"id": "z", "t": 5})
    _apply(table, {"id": "m", "t": 5})
    _apply(table, {"id": "zz", "t": 5})
    assert _ids(table) == ["m", "z", "zz"]


def test_apply__duplicate_event_id_is_stored_once_and_not_scored():
    table = _table()
    _apply(table, {"id": "a", "t": 10})
    again = _apply(table, {"id": "a", "t": 10, "value": 99.0})
    assert again.status.tolist() == [AppendStatus.DUPLICATE]
    assert again.scored.tolist() == []
    assert table.read("c1").events[:, 0].tolist() == [10.0]


def test_apply__redelivered_event_changes_nothing_and_is_scored_as_of_itself():
    table = _table()
    _apply(table, {"id": "a", "t": 10}, {"id": "b", "t": 20}, {"id": "c", "t": 30})
    replay = _apply(table, {"id": "b", "t": 20, "redelivered": True})
    assert replay.status.tolist() == [AppendStatus.REDELIVERED]
    assert _windows_of(replay)[0] == (["a", "b"], [10.0, 20.0])
    assert _ids(table) == ["a", "b", "c"]


def test_apply__keeps_only_the_latest_window():
    table = _table(window=3)
    for i in range(5):
        _apply(table, {"id": f"e{i}", "t": 10 * i})
    assert _ids(table) == ["e2", "e3", "e4"]
    late = _apply(table, {"id": "old", "t": 1})
    assert late.status.tolist() == [AppendStatus.OUTSIDE_WINDOW]
    assert _ids(table) == ["e2", "e3", "e4"]


def test_apply__profile_is_kept_apart_latest_by_time_with_exposure():
    table = _table()
    first = {"id": "p1", "t": 100, "kind": "profile", "value": 1.0, "exposure": 5e4}
    older = {"id": "p0", "t": 50, "kind": "profile", "value": 0.0, "exposure": 1.0}
    _apply(table, first)
    applied = _apply(table, older)
    assert applied.scored.tolist() == []  # a profile alone: nothing to score
    record = table.read("c1")
    assert record.event_ids == [] and record.profile.tolist() == [1.0, 1.0]
    assert record.exposure == 5e4
    assert _apply(table, first).status.tolist() == [AppendStatus.DUPLICATE]


def test_apply__same_event_id_other_content_is_a_conflict_not_a_duplicate():
    table = _table()
    assert _apply(table, {"id": "a", "t": 10, "hash": 11}).status[0] == AppendStatus.APPLIED
    assert _apply(table, {"id": "a", "t": 10, "hash": 11}).status[0] == AppendStatus.DUPLICATE
    clash = _apply(table, {"id": "a", "t": 10, "hash": 12})
    assert clash.status[0] == AppendStatus.CONFLICT and clash.stored_hash[0] == 11
    assert _apply(table, {"id": "a", "t": 10}).status[0] == AppendStatus.DUPLICATE  # no hash
    _apply(table, {"id": "p", "t": 5, "kind": "profile", "hash": 7})
    assert _apply(table, {"id": "p", "t": 5, "kind": "profile", "hash": 8}).status[0] == 4


def test_apply__one_batch_scores_each_event_with_the_window_it_left():
    table = _table(window=2)
    applied = _apply(
        table,
        {"id": "a", "t": 10},
        {"id": "x", "t": 5, "customer": "c2"},
        {"id": "b", "t": 20},
        {"id": "p", "t": 1, "kind": "profile", "value": 7.0},
        {"id": "c", "t": 30},
    )
    windows = _windows_of(applied)
    assert windows[0] == (["a"], [10.0])
    assert windows[2] == (["a", "b"], [10.0, 20.0])
    assert windows[3] == (["a", "b"], [10.0, 20.0])  # the profile, scored with the window
    assert windows[4] == (["b", "c"], [20.0, 30.0])
    rows = {int(i): b for b, i in enumerate(applied.scored)}
    assert not applied.windows.has_profile[rows[2]] and applied.windows.has_profile[rows[4]]
    assert applied.windows.profile[rows[4]].tolist() == [7.0, 7.0]


def test_fold__equals_the_window_recomputed_from_the_full_history():
    """Random arrival order with duplicates == ``transform.window`` of the history."""
    rng = random.Random(7)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    history = [
        CustomerEvent(
            event_id=f"e{i}",
            customer_id="c1",
            domain="credit",
            kind="bill",
            event_time=start + timedelta(minutes=rng.randrange(40)),
        )
        for i in range(25)
    ]
    arrivals = history + rng.sample(history, 8)
    rng.shuffle(arrivals)
    table = _table(window=6)
    for chunk in range(0, len(arrivals), 5):
        items = [{"id": e.event_id, "t": event_time_ms(e)} for e in arrivals[chunk : chunk + 5]]
        _apply(table, *items)
    expected = window(arrivals, 6)
    record = table.read("c1")
    assert record.event_ids == [e.event_id for e in expected]
    assert record.event_times_ms.tolist() == [event_time_ms(e) for e in expected]


class _Reference:
    """The rule one event at a time, in sorted lists: slow, obviously right."""

    def __init__(self, size):
        self.size = size
        self.events = {}  # customer -> [(t, id bytes, value, hash)]
        self.profiles = {}  # customer -> (t, id, value, hash, exposure)

    def apply(self, item):
        c, t, key = item.get("customer", "c1"), item["t"], item["id"].encode()
        value, h = float(item.get("value", t)), item.get("hash", 0)
        events = self.events.setdefault(c, [])
        differ = lambda new, old: new != 0 and old != 0 and new != old  # noqa: E731
        if item.get("redelivered"):
            status = AppendStatus.REDELIVERED
            window = [e for e in events if (e[0], e[1]) <= (t, key)]
        elif item.get("kind") == "profile":
            old = self.profiles.get(c)
            status = AppendStatus.APPLIED
            if old is not None and old[1] == item["id"]:
                status = AppendStatus.CONFLICT if differ(h, old[3]) else AppendStatus.DUPLICATE
            elif old is None or old[0] <= t:
                self.profiles[c] = (t, item["id"], value, h, item.get("exposure"))
            window = events
        elif any(e[1] == key for e in events):
            old = next(e[3] for e in events if e[1] == key)
            status = AppendStatus.CONFLICT if differ(h, old) else AppendStatus.DUPLICATE
            window = None
        else:
            entry = (t, key, value, h)
            ordered = sorted([*events, entry], key=lambda e: (e[0], e[1]))
            if len(ordered) > self.size and ordered.index(entry) < len(ordered) - self.size:
                status, window = AppendStatus.OUTSIDE_WINDOW, None
            else:
                self.events[c] = ordered[-self.size :]
                status, window = AppendStatus.APPLIED, self.events[c]
        scored = None
        if window and status in (AppendStatus.APPLIED, AppendStatus.REDELIVERED):
            scored = ([e[1].decode() for e in window], [e[2] for e in window])
        return status, scored


@pytest.mark.parametrize("seed", range(4))
def test_table_and_reference_agree_on_a_random_stream(seed):
    rng = random.Random(seed)
    items = []
    for i in range(400):
        item = {"customer": f"c{rng.randrange(6)}", "t": rng.randrange(60), "value": float(i)}
        if rng.random() < 0.1:
            item.update(
                id=f"p{rng.randrange(3)}", kind="profile", exposure=float(i), hash=rng.randrange(3)
            )
        else:
            item.update(id=f"e{rng.randrange(80)}", hash=rng.randrange(3))
            item["redelivered"] = rng.random() < 0.05
        items.append(item)
    table, reference = _table(window=5), _Reference(5)
    seen = set()
    for start in range(0, len(items), rng.choice([1, 7, 37])):
        chunk = items[start : start + 37]
        applied = table.apply(_appends(chunk), now_s=0.0, serial=start + 1)
        windows = _windows_of(applied)
        for j, item in enumerate(chunk):
            status, scored = reference.apply(item)
            seen.add(status)
            assert applied.status[j] == status, (start + j, item)
            assert windows.get(j) == scored, (start + j, item)
    for c in reference.events:
        assert table.read(c).event_ids == [e[1].decode() for e in reference.events[c]]
    assert seen == set(AppendStatus)


def test_records__round_trip_through_load():
    table = _table()
    _apply(
        table,
        {"id": "p", "t": 1, "kind": "profile", "value": 2.0, "exposure": 10.0, "hash": 3},
        {"id": "a", "t": 10, "hash": 5, "part": 2},
        {"id": "b", "t": 20, "kind": "pay", "part": 2},
    )
    ((customer, partition, raw),) = table.records(np.array([0]), {2: 9})
    record = unpack_window(raw)
    assert (customer, partition, record.partition, record.epoch) == ("c1", 2, 2, 9)
    assert record.event_ids == ["a", "b"] and record.kinds == ["bill", "pay"]
    assert record.hashes.tolist() == [5, 0] and record.profile_hash == 3
    other = _table()
    other.load("c1", 2, record)
    again = other.read("c1")
    assert (again.event_ids, again.kinds, again.hashes.tolist()) == (
        ["a", "b"],
        ["bill", "pay"],
        [5, 0],
    )
    np.testing.assert_array_equal(again.events, record.events)
    assert (again.profile_id, again.profile_hash, again.exposure) == ("p", 3, 10.0)
    applied = other.apply(_appends([{"id": "c", "t": 30, "part": 2}]), 0.0, 2)
    assert _windows_of(applied)[0] == (["a", "b", "c"], [10.0, 20.0, 30.0])
    assert applied.windows.exposure[0] == 10.0


def test_evict__forgets_least_recently_used_durable_customers_only():
    table = _table()
    for i in range(10):
        _apply(table, {"id": "a", "t": 1, "customer": f"c{i}"}, serial=i + 1)
    assert table.evict(max_customers=5, durable_serial=3) == 3  # only serials 1-3 are durable
    assert len(table) == 7 and "c0" not in table and "c3" in table
    assert table.evict(max_customers=5, durable_serial=10) == 2
    assert [f"c{i}" for i in range(10) if f"c{i}" in table] == ["c5", "c6", "c7", "c8", "c9"]


def test_drop_partitions__forgets_their_customers_and_reuses_the_memory():
    table = _table()
    _apply(
        table,
        {"id": "a", "t": 1, "customer": "x", "part": 0},
        {"id": "a", "t": 1, "customer": "y", "part": 1},
    )
    before = table.nbytes()
    assert table.drop_partitions([1]) == 1
    assert "y" not in table and "x" in table
    _apply(table, {"id": "b", "t": 2, "customer": "y", "part": 1})
    assert table.nbytes() == before


def test_ttl__a_customer_unused_for_longer_is_forgotten():
    table = WindowTable(4, DIM, PDIM, ttl_s=10)
    table.apply(_appends([{"id": "a", "t": 1}]), now_s=0.0, serial=1)
    assert table.missing(["c1"], now_s=5.0) == []
    assert table.missing(["c1", "c1"], now_s=11.0) == ["c1"]


def test_windows_concat__pads_to_the_longest_and_keeps_every_row():
    table = _table()
    one = _apply(table, {"id": "a", "t": 1, "customer": "x"}).windows
    two = _apply(table, {"id": "b", "t": 2, "customer": "x"},
                 {"id": "c", "t": 1, "customer": "y"}, serial=2).windows  # fmt: skip
    both = Windows.concat([one, two])
    assert both.events.shape[:2] == (3, 2) and both.lengths.tolist() == [1, 2, 1]
    assert [both.event_ids(i) for i in range(3)] == [["a"], ["a", "b"], ["c"]]
    np.testing.assert_array_equal(both.events[0, :1], one.events[0])
    assert not both.mask[0, 1] and not both.events[0, 1].any()
