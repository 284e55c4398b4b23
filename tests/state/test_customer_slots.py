"""The slot map shared by the partition-owned tables: eviction, TTL, growth (on both tables)."""

from crmrisk.state import AlertState, AlertTable, WindowTable
from tests.state.conftest import DIM, PDIM, appends, apply, new_table


def test_evict__forgets_least_recently_used_durable_customers_only():
    table = new_table()
    for i in range(10):
        apply(table, {"id": "a", "t": 1, "customer": f"c{i}"}, serial=i + 1)
    assert table.evict(max_customers=5, durable_serial=3) == 3  # only serials 1-3 are durable
    assert len(table) == 7 and "c0" not in table and "c3" in table
    assert table.evict(max_customers=5, durable_serial=10) == 2
    assert [f"c{i}" for i in range(10) if f"c{i}" in table] == ["c5", "c6", "c7", "c8", "c9"]


def test_ttl__a_customer_unused_for_longer_is_forgotten():
    table = WindowTable(4, DIM, PDIM, ttl_s=10)
    table.apply(appends([{"id": "a", "t": 1}]), now_s=0.0, serial=1)
    assert table.missing(["c1"], now_s=5.0) == []
    assert table.missing(["c1", "c1"], now_s=11.0) == ["c1"]


def test_growth__past_the_first_slots_keeps_every_customer_and_value():
    windows, alerts = new_table(), AlertTable(ttl_s=60)
    customers = [f"c{i}" for i in range(600)]
    apply(windows, *({"id": "a", "t": i, "customer": c} for i, c in enumerate(customers)))
    for i, c in enumerate(customers):
        alerts.load(c, i % 3, AlertState(armed=i % 2 == 0, last_alert_s=float(i)))
    assert len(windows) == len(alerts) == 600
    assert windows.read("c599").event_times_ms.tolist() == [599]
    assert alerts.state("c599") == AlertState(False, 599.0) and alerts.state("c0").armed
    assert windows.drop_partitions([0]) == 600 and len(windows) == 0
