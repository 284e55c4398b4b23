"""Alert states: held by the partition owner (``AlertTable``), read back from Redis."""

import numpy as np
import pytest

from crmrisk.state import AlertState, AlertStateStore, AlertTable, PartitionFence, PartitionWrite
from crmrisk.state.records import unpack_alert


def test_table__a_customer_never_seen_is_armed_and_states_round_trip_through_records():
    table = AlertTable(ttl_s=60)
    slots = table.slots(["c1", "c2"], np.array([0, 1], np.int32), now_s=0.0, serial=1)
    assert table.state("c1") == AlertState(True, None)
    table.armed[slots[0]], table.last_s[slots[0]] = False, 12.5
    again = AlertTable(ttl_s=60)
    for customer, partition, raw in table.records(slots, {0: 3, 1: 4}):
        record = unpack_alert(raw)
        assert (record.partition, record.epoch) == (partition, {0: 3, 1: 4}[partition])
        again.load(customer, partition, AlertState(record.armed, record.last_alert_s))
    assert again.state("c1") == AlertState(False, 12.5)
    assert again.state("c2") == AlertState(True, None)


def test_table__forgets_after_the_ttl_and_by_partition():
    table = AlertTable(ttl_s=10)
    table.slots(["a", "b"], np.array([0, 1], np.int32), now_s=0.0, serial=1)
    assert table.missing(["a", "b", "c"], now_s=5.0) == ["c"]
    assert table.drop_partitions([1]) == 1 and table.state("b") is None
    assert table.missing(["a"], now_s=11.0) == ["a"] and table.state("a") is None


@pytest.mark.integration
def test_store__reads_what_the_fenced_write_stored(redis_client, redis_prefix):
    fence = PartitionFence(redis_client, redis_prefix, 60, 0, 1000)
    table = AlertTable(ttl_s=60)
    slots = table.slots(["c1"], np.array([0], np.int32), now_s=0.0, serial=1)
    table.armed[slots[0]], table.last_s[slots[0]] = False, 12.5
    epoch = fence.claim("events", 0, 1).epoch
    records = [("credit", c, raw) for c, _, raw in table.records(slots, {0: epoch})]
    assert fence.write("events", [PartitionWrite(0, epoch, None, 1, alerts=records)]) == []
    store = AlertStateStore(redis_client, redis_prefix)
    assert store.read_many([("c1", "credit"), ("nobody", "credit")]) == [
        AlertState(False, 12.5),
        AlertState(True, None),
    ]
