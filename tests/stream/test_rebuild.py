"""State rebuild: a partition whose state mark is gone is restored from its history first.

In-memory ports and a list for the topic's history; the same against the real broker and a
redis-server killed mid-stream is ``tests/integration/test_redis_outage.py``.
"""

from __future__ import annotations

import asyncio

import numpy as np

from state import AlertState
from state.memory import MemoryAlertStore, MemoryMarks, MemoryScoreStore, MemorySequenceStore
from stream.events import RiskAlert, RiskScore
from stream.rebuild import StateRebuilder
from tests.stream.conftest import raw_event as _raw
from tests.stream.test_pipeline import ListSink, Log, Record, _pipeline, _run


class ListHistory:
    """The topic as a list of records; reads it back in chunks of ``chunk``."""

    def __init__(self, records: list[Record], chunk: int = 2) -> None:
        self.records, self.chunk, self.reads = records, chunk, []

    async def beginning(self, topic: str, partition: int) -> int:
        offsets = [r.offset for r in self.records if (r.topic, r.partition) == (topic, partition)]
        return min(offsets, default=0)

    async def read(self, topic, partition, start, end):
        self.reads.append((topic, partition, start, end))
        wanted = [
            r for r in self.records
            if (r.topic, r.partition) == (topic, partition) and start <= r.offset < end
        ]  # fmt: skip
        for i in range(0, len(wanted), self.chunk):
            yield wanted[i : i + self.chunk]

    async def close(self) -> None:
        return None


class Redis:
    """The three stores and the marks, as one Redis that can lose everything at once."""

    def __init__(self) -> None:
        self.lose()

    def lose(self) -> None:
        self.sequences = MemorySequenceStore(window=3)
        self.alerts = MemoryAlertStore()
        self.scores = MemoryScoreStore()
        self.marks = MemoryMarks()


def _topic() -> list[Record]:
    """Two customers, 8 events over two partitions, with a late one and a profile."""
    values = [
        (0, b"c1", _raw("p1", kind="profile", limit=50)),
        (0, b"c1", _raw("a1", day=1)),
        (1, b"c2", _raw("a2", customer="c2", day=1)),
        (0, b"c1", _raw("b1", day=3)),
        (1, b"c2", _raw("b2", customer="c2", day=2)),
        (0, b"c1", _raw("c1-late", day=2)),
        (0, b"c1", _raw("d1", day=4)),
        (1, b"c2", _raw("c2", customer="c2", day=3)),
    ]
    offsets = {0: 0, 1: 0}
    out = []
    for partition, key, value in values:
        out.append(Record("events", partition, offsets[partition], key, value, 1000))
        offsets[partition] += 1
    return out


def _world(redis: Redis, batches, history):
    pipeline, source, sink = _pipeline(
        Log(), batches, sequences=redis.sequences, scores=redis.scores
    )
    pipeline.scoring.alert_states = redis.alerts
    pipeline.rebuilder = StateRebuilder(redis.marks, history, pipeline.restore)
    return pipeline, source, sink


def _rebind(pipeline, redis: Redis) -> None:
    """What a real worker has for free: its clients now talk to the (emptied) Redis."""
    pipeline.intake._store = redis.sequences
    pipeline.scoring.alert_states = redis.alerts
    pipeline.scoring.latest_scores = redis.scores
    pipeline.rebuilder.marks = redis.marks


def _state(redis: Redis) -> dict:
    out = {}
    for customer in ("c1", "c2"):
        window = redis.sequences.read(customer, "credit")
        out[customer] = (
            window.event_ids,
            window.events.tolist(),
            None if window.profile is None else window.profile.tolist(),
            redis.alerts.read(customer, "credit"),
            RiskScore.model_validate_json(redis.scores.read(customer, "credit")).event_id,
        )
    return out


def test_lost_state__is_rebuilt_before_the_next_batch_and_equals_never_losing_it():
    topic = _topic()
    first, second = topic[:5], topic[5:]
    never_lost = Redis()
    reference, _, _ = _world(never_lost, [first, second], ListHistory(topic))
    _run(reference, steps=2)

    redis = Redis()
    history = ListHistory(topic)
    pipeline, source, sink = _world(redis, [first, second], history)
    _run(pipeline)
    assert history.reads == []  # a first run: nothing before offset 0 to rebuild
    assert redis.marks.missing("events", [0, 1]) == []
    redis.lose()  # Redis restarted empty
    _rebind(pipeline, redis)
    _run(pipeline)
    # each partition rebuilt up to the first offset of the batch in hand
    assert sorted(history.reads) == [("events", 0, 0, 3), ("events", 1, 0, 2)]
    assert _state(redis) == _state(never_lost)
    assert _state(redis)["c1"][0] == ["c1-late", "b1", "d1"]  # W=3, by event time
    assert pipeline.metrics.rebuilt._value.get() == 5
    assert len(source.committed) == 8
    # nothing produced by the rebuild: one score per event, one alert per first crossing
    scores = [RiskScore.model_validate_json(v).event_id for v in sink.on("scores")]
    assert sorted(scores) == sorted(["a1", "a2", "b1", "b2", "c1-late", "d1", "c2"])
    alerts = [RiskAlert.model_validate_json(v).alert_id for v in sink.on("alerts")]
    assert sorted(alerts) == ["credit:c1:a1", "credit:c2:a2"]  # not re-fired after the rebuild


def test_state_lost_while_a_batch_is_in_hand__the_batch_is_redone_on_whole_history():
    topic = _topic()
    first, second = topic[:5], topic[5:]
    never_lost = Redis()
    reference, _, _ = _world(never_lost, [first, second], ListHistory(topic))
    _run(reference, steps=2)

    redis = Redis()
    pipeline, source, sink = _world(redis, [first, second], ListHistory(topic))
    _run(pipeline)
    sink_flush = sink.flush
    losses = [1]

    async def flush_then_lose() -> None:  # Redis restarts after the appends, before step 7
        await sink_flush()
        if losses:
            losses.pop()
            redis.lose()
            _rebind(pipeline, redis)

    sink.flush = flush_then_lose
    _run(pipeline)
    assert [w[:3] for w in _state(redis).values()] == [w[:3] for w in _state(never_lost).values()]
    assert redis.marks.missing("events", [0, 1]) == []
    assert len(source.committed) == 8


def test_restore__is_idempotent_by_event_id():
    topic = _topic()
    redis = Redis()
    pipeline, _, _ = _world(redis, [], ListHistory(topic))
    pipeline.restore(topic)
    once = _state(redis)
    pipeline.restore(topic)
    assert _state(redis)["c1"][:3] == once["c1"][:3]
    assert isinstance(once["c1"][3], AlertState)
    assert np.isfinite(np.array(once["c1"][1])).all()


def test_rebuild__marks_a_partition_with_no_history_without_reading():
    redis = Redis()
    history = ListHistory([])
    rebuilder = StateRebuilder(redis.marks, history, lambda records: len(records))
    asyncio.run(rebuilder.ensure([Record("events", 3, 0, b"c", b"{}", 0)]))
    assert history.reads == [] and redis.marks.missing("events", [3]) == []
    _ = ListSink  # the sink is only needed by the pipeline tests above
