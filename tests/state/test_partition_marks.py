"""State marks: the Redis store and its in-memory twin pass the same contract."""

import pytest

from state import PartitionMarks
from state.memory import MemoryMarks

pytestmark = pytest.mark.integration


@pytest.fixture(params=["redis", "memory"])
def marks(request, redis_client, redis_prefix):
    if request.param == "memory":
        return MemoryMarks()
    return PartitionMarks(redis_client, redis_prefix.rstrip(":"))


def test_marks__missing_until_marked_per_topic_and_partition(marks):
    assert marks.missing("events", [0, 1, 2]) == [0, 1, 2]
    marks.mark("events", 1, rebuilt_events=10, up_to=42)
    assert marks.missing("events", [0, 1, 2]) == [0, 2]
    assert marks.missing("other", [1]) == [1]
    assert marks.missing("events", []) == []


def test_marks__clear_forgets_one_topic(marks):
    marks.mark("events", 0, 0, 0)
    marks.mark("other", 0, 0, 0)
    marks.clear("events")
    assert marks.missing("events", [0]) == [0]
    assert marks.missing("other", [0]) == []


def test_marks__vanish_with_the_data_they_vouch_for(redis_client, redis_prefix):
    marks = PartitionMarks(redis_client, redis_prefix.rstrip(":"))
    marks.mark("events", 0, 0, 0)
    for key in redis_client.scan_iter(match=f"{redis_prefix}*"):
        redis_client.delete(key)  # what a Redis restarted without persistence has
    assert marks.missing("events", [0]) == [0]
