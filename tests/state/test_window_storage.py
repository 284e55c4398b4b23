"""The windows' storage: window records out and back in, dropped partitions' memory reused."""

import numpy as np

from crmrisk.state.records import unpack_window
from tests.state.conftest import appends, apply, new_table, windows_of


def test_records__round_trip_through_load():
    table = new_table()
    apply(
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
    other = new_table()
    other.load("c1", 2, record)
    again = other.read("c1")
    assert (again.event_ids, again.kinds, again.hashes.tolist()) == (
        ["a", "b"],
        ["bill", "pay"],
        [5, 0],
    )
    np.testing.assert_array_equal(again.events, record.events)
    assert (again.profile_id, again.profile_hash, again.exposure) == ("p", 3, 10.0)
    applied = other.apply(appends([{"id": "c", "t": 30, "part": 2}]), 0.0, 2)
    assert windows_of(applied)[0] == (["a", "b", "c"], [10.0, 20.0, 30.0])
    assert applied.windows.exposure[0] == 10.0


def test_drop_partitions__forgets_their_customers_and_reuses_the_memory():
    table = new_table()
    apply(
        table,
        {"id": "a", "t": 1, "customer": "x", "part": 0},
        {"id": "a", "t": 1, "customer": "y", "part": 1},
    )
    before = table.nbytes()
    assert table.drop_partitions([1]) == 1
    assert "y" not in table and "x" in table
    apply(table, {"id": "b", "t": 2, "customer": "y", "part": 1})
    assert table.nbytes() == before
