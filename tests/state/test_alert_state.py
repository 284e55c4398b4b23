"""AlertStateStore against real Redis."""

import uuid

import pytest

from state import AlertState, AlertStateStore

pytestmark = pytest.mark.integration


@pytest.fixture
def store(redis_client):
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
