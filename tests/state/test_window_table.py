"""The window rule, as the partition owner applies it (``state.window_table.WindowTable``).

A plain per-event reference (``_Reference``: sorted lists, the rule as the docstring states it)
is the oracle; the table must agree with it event by event on random streams, batch by batch,
and with ``state.window_rule.window_positions`` over whole histories.
"""

import random

import pytest

from crmrisk.state import AppendStatus, window_positions
from tests.state.conftest import appends, apply, ids, new_table, windows_of


def test_apply__orders_by_event_time_and_places_late_events():
    table = new_table()
    for event_id, t in [("b", 20), ("c", 30), ("a", 10)]:
        applied = apply(table, {"id": event_id, "t": t})
    assert applied.status.tolist() == [AppendStatus.APPLIED]
    assert windows_of(applied)[0] == (["a", "b", "c"], [10.0, 20.0, 30.0])
    record = table.read("c1")
    assert record.event_times_ms.tolist() == [10, 20, 30]
    assert record.kinds == ["bill"] * 3


def test_apply__ties_in_time_are_ordered_by_event_id():
    table = new_table()
    apply(table, {"id": "z", "t": 5})
    apply(table, {"id": "m", "t": 5})
    apply(table, {"id": "zz", "t": 5})
    assert ids(table) == ["m", "z", "zz"]


def test_apply__duplicate_event_id_is_stored_once_and_not_scored():
    table = new_table()
    apply(table, {"id": "a", "t": 10})
    again = apply(table, {"id": "a", "t": 10, "value": 99.0})
    assert again.status.tolist() == [AppendStatus.DUPLICATE]
    assert again.scored.tolist() == []
    assert table.read("c1").events[:, 0].tolist() == [10.0]


def test_apply__redelivered_event_changes_nothing_and_is_scored_as_of_itself():
    table = new_table()
    apply(table, {"id": "a", "t": 10}, {"id": "b", "t": 20}, {"id": "c", "t": 30})
    replay = apply(table, {"id": "b", "t": 20, "redelivered": True})
    assert replay.status.tolist() == [AppendStatus.REDELIVERED]
    assert windows_of(replay)[0] == (["a", "b"], [10.0, 20.0])
    assert ids(table) == ["a", "b", "c"]


def test_apply__keeps_only_the_latest_window():
    table = new_table(window=3)
    for i in range(5):
        apply(table, {"id": f"e{i}", "t": 10 * i})
    assert ids(table) == ["e2", "e3", "e4"]
    late = apply(table, {"id": "old", "t": 1})
    assert late.status.tolist() == [AppendStatus.OUTSIDE_WINDOW]
    assert ids(table) == ["e2", "e3", "e4"]


def test_apply__profile_is_kept_apart_latest_by_time_with_exposure():
    table = new_table()
    first = {"id": "p1", "t": 100, "kind": "profile", "value": 1.0, "exposure": 5e4}
    older = {"id": "p0", "t": 50, "kind": "profile", "value": 0.0, "exposure": 1.0}
    apply(table, first)
    applied = apply(table, older)
    assert applied.scored.tolist() == []  # a profile alone: nothing to score
    record = table.read("c1")
    assert record.event_ids == [] and record.profile.tolist() == [1.0, 1.0]
    assert record.exposure == 5e4
    assert apply(table, first).status.tolist() == [AppendStatus.DUPLICATE]


def test_apply__same_event_id_other_content_is_a_conflict_not_a_duplicate():
    table = new_table()
    assert apply(table, {"id": "a", "t": 10, "hash": 11}).status[0] == AppendStatus.APPLIED
    assert apply(table, {"id": "a", "t": 10, "hash": 11}).status[0] == AppendStatus.DUPLICATE
    clash = apply(table, {"id": "a", "t": 10, "hash": 12})
    assert clash.status[0] == AppendStatus.CONFLICT and clash.stored_hash[0] == 11
    assert apply(table, {"id": "a", "t": 10}).status[0] == AppendStatus.DUPLICATE  # no hash
    apply(table, {"id": "p", "t": 5, "kind": "profile", "hash": 7})
    assert apply(table, {"id": "p", "t": 5, "kind": "profile", "hash": 8}).status[0] == 4


def test_apply__one_batch_scores_each_event_with_the_window_it_left():
    table = new_table(window=2)
    applied = apply(
        table,
        {"id": "a", "t": 10},
        {"id": "x", "t": 5, "customer": "c2"},
        {"id": "b", "t": 20},
        {"id": "p", "t": 1, "kind": "profile", "value": 7.0},
        {"id": "c", "t": 30},
    )
    windows = windows_of(applied)
    assert windows[0] == (["a"], [10.0])
    assert windows[2] == (["a", "b"], [10.0, 20.0])
    assert windows[3] == (["a", "b"], [10.0, 20.0])  # the profile, scored with the window
    assert windows[4] == (["b", "c"], [20.0, 30.0])
    rows = {int(i): b for b, i in enumerate(applied.scored)}
    assert not applied.windows.has_profile[rows[2]] and applied.windows.has_profile[rows[4]]
    assert applied.windows.profile[rows[4]].tolist() == [7.0, 7.0]


def test_fold__equals_the_window_recomputed_from_the_full_history():
    """Random arrival order with duplicates == ``window_positions`` of the history."""
    rng = random.Random(7)
    history = [{"id": f"e{i}", "t": 60_000 * rng.randrange(40)} for i in range(25)]
    arrivals = history + rng.sample(history, 8)
    rng.shuffle(arrivals)
    table = new_table(window=6)
    for chunk in range(0, len(arrivals), 5):
        apply(table, *arrivals[chunk : chunk + 5])
    kept = window_positions(
        [a["id"] for a in arrivals], [a["t"] for a in arrivals], [False] * len(arrivals), 6
    )
    record = table.read("c1")
    assert record.event_ids == [arrivals[i]["id"] for i in kept]
    assert record.event_times_ms.tolist() == [arrivals[i]["t"] for i in kept]


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
    table, reference = new_table(window=5), _Reference(5)
    seen = set()
    for start in range(0, len(items), rng.choice([1, 7, 37])):
        chunk = items[start : start + 37]
        applied = table.apply(appends(chunk), now_s=0.0, serial=start + 1)
        windows = windows_of(applied)
        for j, item in enumerate(chunk):
            status, scored = reference.apply(item)
            seen.add(status)
            assert applied.status[j] == status, (start + j, item)
            assert windows.get(j) == scored, (start + j, item)
    for c in reference.events:
        assert table.read(c).event_ids == [e[1].decode() for e in reference.events[c]]
    assert seen == set(AppendStatus)
