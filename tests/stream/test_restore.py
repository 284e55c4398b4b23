"""Restoring partition state from the topic when Redis lost it, or lost a tail of it.

In-memory ports and a list for the topic; the same against the real broker and a redis-server
killed mid-stream is ``tests/integration/test_redis_outage.py``.
"""

from __future__ import annotations

import copy

from crmrisk.stream.events import RiskAlert, RiskScore
from tests.stream.conftest import (
    ListHistory,
    Log,
    LoggedState,
    Record,
    TopicSource,
    pipeline,
    raw_event,
    run,
)


def _topic() -> list[Record]:
    """Two customers, 8 events over two partitions, with a late one and a profile."""
    values = [
        (0, b"c1", raw_event("p1", kind="profile", limit=50)),
        (0, b"c1", raw_event("a1", day=1)),
        (1, b"c2", raw_event("a2", customer="c2", day=1)),
        (0, b"c1", raw_event("b1", day=3)),
        (1, b"c2", raw_event("b2", customer="c2", day=2)),
        (0, b"c1", raw_event("c1-late", day=2)),
        (0, b"c1", raw_event("d1", day=4)),
        (1, b"c2", raw_event("c2", customer="c2", day=3)),
    ]
    offsets = {0: 0, 1: 0}
    out = []
    for partition, key, value in values:
        out.append(Record("events", partition, offsets[partition], key, value, 1000))
        offsets[partition] += 1
    return out


def _world(state, topic, size=5):
    source = TopicSource(Log(), topic, size=size)
    p, _, sink = pipeline(Log(), state=state, source=source, history=ListHistory(topic),
                          window=3)  # fmt: skip
    return p, source, sink


def _state(state) -> dict:
    out = {}
    for customer in ("c1", "c2"):
        window = state.sequence(customer, "credit")
        out[customer] = (
            window.event_ids,
            window.events.tolist(),
            None if window.profile is None else window.profile.tolist(),
            state.alert_state(customer, "credit"),
            RiskScore.model_validate_json(state.latest_score(customer, "credit")).event_id,
        )
    return out


def _reference(topic) -> dict:
    never_lost = LoggedState(Log())
    reference, _, _ = _world(never_lost, topic)
    run(reference, steps=2)
    return _state(never_lost)


def _scores(sink) -> list[str]:
    return sorted(RiskScore.model_validate_json(v).event_id for v in sink.on("scores"))


def test_lost_state__is_restored_before_the_next_batch_and_equals_never_losing_it():
    topic = _topic()
    state = LoggedState(Log())
    p, source, sink = _world(state, topic)
    run(p)
    assert p.history.reads == []  # a first run: nothing before offset 0 to restore
    state.flush()  # Redis restarted empty
    run(p)
    # each partition restored up to the first offset of the batch in hand, from nothing
    assert sorted(p.history.reads) == [("events", 0, 0, 3), ("events", 1, 0, 2)]
    assert _state(state) == _reference(topic)
    assert _state(state)["c1"][0] == ["c1-late", "b1", "d1"]  # W=3, by event time
    assert p.metrics.rebuilt._value.get() == 5
    assert source.committed == {0: 5, 1: 3}
    # nothing produced by the restore: one score per event, one alert per first crossing
    assert _scores(sink) == sorted(["a1", "a2", "b1", "b2", "c1-late", "d1", "c2"])
    alerts = [RiskAlert.model_validate_json(v).alert_id for v in sink.on("alerts")]
    assert sorted(alerts) == ["credit:c1:a1", "credit:c2:a2"]  # not re-fired after it


def test_state_lost_while_a_batch_is_in_hand__the_batch_is_redone_on_whole_history():
    topic = _topic()
    state = LoggedState(Log())
    p, source, sink = _world(state, topic)
    run(p)
    write = state.write
    losses = [1]

    def lose_then_write(topic_name, writes):  # Redis restarts before the batch's write
        if losses:
            losses.pop()
            state.flush()
        return write(topic_name, writes)

    state.write = lose_then_write
    run(p, steps=3, drain_each=True)  # refused, then rewound, then done again
    assert [w[:4] for w in _state(state).values()] == [w[:4] for w in _reference(topic).values()]
    assert sorted(source.rewinds) == [(0, 3), (1, 2)]
    assert source.committed == {0: 5, 1: 3}
    assert set(_scores(sink)) == {"a1", "a2", "b1", "b2", "c1-late", "d1", "c2"}


def test_lost_tail__redis_rolled_back_a_few_batches_is_found_and_the_gap_restored():
    """A host crash loses the last second of the append-only file: Redis comes back as it was
    a few batches earlier. The gap is restored from the topic on top of what Redis kept."""
    topic = _topic()
    state = LoggedState(Log())
    p, source, sink = _world(state, topic, size=2)
    run(p)  # p1, a1
    snapshot = copy.deepcopy((state.values, state.epochs, state.generations, state.offsets))
    run(p, steps=2)  # a2, b1 | b2, c1-late: Redis acknowledged these writes
    state.values, state.epochs, state.generations, state.offsets = snapshot  # the crash
    run(p, steps=2)
    assert [w[:4] for w in _state(state).values()] == [w[:4] for w in _reference(topic).values()]
    gaps = sorted(read for read in p.history.reads)
    assert gaps == [("events", 0, 2, 4), ("events", 1, 0, 2)]  # only what Redis lacked
    assert source.committed == {0: 5, 1: 3}
    assert _scores(sink) == sorted(["a1", "a2", "b1", "b2", "c1-late", "d1", "c2"])


def test_restore__of_a_partition_with_no_history_reads_nothing():
    topic = [Record("events", 3, 0, b"c", raw_event("e", customer="c"), 0)]
    state = LoggedState(Log())
    p, source, _ = _world(state, topic)
    run(p)
    assert p.history.reads == [] and source.committed == {3: 1}
