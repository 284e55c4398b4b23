"""The latest score contract, against real Redis and the in-memory twin."""

import uuid

import pytest

from state import LatestScoreStore
from state.memory import MemoryScoreStore

pytestmark = pytest.mark.integration


@pytest.fixture(params=["redis", "memory"])
def store(request, redis_client):
    if request.param == "memory":
        yield MemoryScoreStore()
        return
    prefix = f"test-score-{uuid.uuid4().hex[:8]}"
    yield LatestScoreStore(redis_client, prefix, ttl_s=60)
    for key in redis_client.scan_iter(f"{prefix}:*"):
        redis_client.delete(key)


def test_write_many__last_write_per_customer_wins(store):
    store.write_many([("c1", "credit", b"old"), ("c2", "credit", b"x"), ("c1", "credit", b"new")])
    assert store.read_many([("c1", "credit"), ("c2", "credit"), ("c3", "credit")]) == [
        b"new",
        b"x",
        None,
    ]
    assert store.read("c1", "credit") == b"new"
