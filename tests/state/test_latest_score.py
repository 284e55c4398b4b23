"""The latest score store, against real Redis (workers write it with their batch's fenced
write; this store reads it back, and writes it for tools and tests)."""

import uuid

import pytest

from crmrisk.state import LatestScoreStore

pytestmark = pytest.mark.integration


@pytest.fixture
def store(redis_client):
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
