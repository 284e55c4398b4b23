"""The alert state contract, against real Redis and the in-memory twin."""

import uuid

import pytest

from state import AlertState, AlertStateStore
from state.memory import MemoryAlertStore

pytestmark = pytest.mark.integration


@pytest.fixture(params=["redis", "memory"])
def store(request, redis_client):
    if request.param == "memory":
        yield MemoryAlertStore()
        return
    prefix = f"test-alert-{uuid.uuid4().hex[:8]}"
    yield AlertStateStore(redis_client, prefix, ttl_s=60)
    for key in redis_client.scan_iter(f"{prefix}:*"):
        redis_client.delete(key)


def test_read__unknown_customer_is_armed(store):
    assert store.read("c1", "credit") == AlertState(armed=True, last_alert_s=None)


def test_write_many__round_trips_and_agrees_with_read_many(store):
    store.write_many([("c1", "credit", AlertState(False, 12.5)), ("c2", "telco", AlertState())])
    states = store.read_many([("c1", "credit"), ("c2", "telco")])
    assert states == [AlertState(False, 12.5), AlertState(True, None)]
    assert states == [store.read("c1", "credit"), store.read("c2", "telco")]


def test_write_many__keeps_the_last_alert_time_when_a_state_has_none(store):
    store.write_many([("c1", "credit", AlertState(False, 12.5))])
    store.write_many([("c1", "credit", AlertState(True, None))])
    assert store.read("c1", "credit") == AlertState(True, 12.5)
