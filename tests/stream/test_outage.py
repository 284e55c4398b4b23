"""Riding out outages: retried in place with backoff, counted, reported, nothing lost or doubled.

In-memory ports (``tests/stream/test_pipeline.py``) with stores and sinks that fail the way an
unreachable Redis or broker does; the real outage (redis-server SIGKILLed under a live worker)
is ``tests/integration/test_redis_outage.py``.
"""

from __future__ import annotations

import pytest
import redis

from state import StateError
from state.memory import MemorySequenceStore
from stream.events import RiskScore
from stream.kafka_io import DeliveryFailed
from stream.metrics import WorkerMetrics
from stream.outage import Outage, dependency_of
from tests.stream.conftest import raw_event as _raw
from tests.stream.test_pipeline import ListSink, Log, _pipeline, _records, _run


def _down() -> StateError:
    try:
        raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379")
    except redis.ConnectionError as exc:
        try:
            raise StateError(f"sequence pipeline of 1 calls failed: {exc}") from exc
        except StateError as wrapped:
            return wrapped


class FlakyStore(MemorySequenceStore):
    """Refuses ``failures`` calls like a Redis that does not answer, then works."""

    def __init__(self, failures: int) -> None:
        super().__init__(window=4)
        self.failures, self.calls = failures, 0

    def append_many(self, items):
        self.calls += 1
        if self.failures:
            self.failures -= 1
            raise _down()
        return super().append_many(items)


class FlakySink(ListSink):
    """The first flushes fail: ``DeliveryFailed`` (messages lost) or ``TimeoutError`` (queued)."""

    def __init__(self, log: Log, errors: list[Exception]) -> None:
        super().__init__(log)
        self.errors = list(errors)

    async def flush(self) -> None:
        if self.errors:
            error = self.errors.pop(0)
            if isinstance(error, DeliveryFailed):
                self.queued.clear()  # what was queued is gone
            raise error
        await super().flush()


class Sleeps(list):
    """Records the backoff waits and what /health said during each."""

    def __init__(self, outage_health) -> None:
        super().__init__()
        self.health = outage_health
        self.reported: list[str | None] = []

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)
        self.reported.append(self.health())


def _with_outage(pipeline, **kw) -> Sleeps:
    outage = Outage(pipeline.metrics.outage_retries, initial_s=0.1, max_s=0.4, **kw)
    sleeps = Sleeps(outage.health)
    outage._sleep = sleeps
    pipeline.outage = outage
    return sleeps


def _retries(metrics: WorkerMetrics, dependency: str) -> float:
    return metrics.outage_retries.labels(dependency)._value.get()


def test_dependency_of__tells_outages_from_bugs():
    assert dependency_of(_down()) == "redis"
    assert dependency_of(DeliveryFailed("x")) == "kafka"
    assert dependency_of(TimeoutError()) == "kafka"
    assert dependency_of(ValueError("a bug")) is None
    lua = StateError("script failed")
    lua.__cause__ = redis.ResponseError("ERR user_script:1: attempt to index a nil value")
    assert dependency_of(lua) is None


def test_step__redis_down_is_retried_with_backoff_and_reported_then_stored_once():
    log = Log()
    store = FlakyStore(failures=4)
    pipeline, _, sink = _pipeline(log, [_records([_raw("a", day=1), _raw("b", day=2)])],
                                       sequences=store)  # fmt: skip
    sleeps = _with_outage(pipeline)
    (report,) = _run(pipeline)
    assert sleeps == [0.1, 0.2, 0.4, 0.4]  # doubling, capped
    assert all(r and r.startswith("redis unavailable") for r in sleeps.reported)
    assert pipeline.health() is None  # recovered
    assert _retries(pipeline.metrics, "redis") == 4
    assert store.read("c1", "credit").event_ids == ["a", "b"]
    assert report.scores == 2 and len(sink.on("scores")) == 2
    assert [op for op, _ in log] == ["flush", "latest", "commit"]  # committed once, at the end


def test_step__a_lost_delivery_is_sent_again_a_slow_flush_only_waited_for():
    for error, sends in ((DeliveryFailed("broker gone"), 2), (TimeoutError("slow"), 1)):
        log = Log()
        sink = FlakySink(log, [error])
        sent = []
        original = sink.send_many

        async def counting(topic, messages, original=original, sent=sent):
            sent.append(topic)
            return await original(topic, messages)

        sink.send_many = counting
        pipeline, source, _ = _pipeline(log, [_records([_raw("a")])], sink=sink)
        _with_outage(pipeline)
        _run(pipeline)
        assert sent.count("scores") == sends
        scores = [RiskScore.model_validate_json(v).event_id for v in sink.on("scores")]
        assert scores == ["a"]  # acknowledged once either way
        assert _retries(pipeline.metrics, "kafka") == 1
        assert len(source.committed) == 1


def test_step__gives_up_after_one_outage_lasts_too_long_and_commits_nothing():
    pipeline, source, _ = _pipeline(Log(), [_records([_raw("a")])], sequences=FlakyStore(99))
    now = [0.0]
    sleeps = _with_outage(pipeline, give_up_s=1.0, clock=lambda: now[0])

    async def advancing(seconds: float) -> None:
        now[0] += seconds
        sleeps.append(seconds)

    pipeline.outage._sleep = advancing
    with pytest.raises(StateError):
        _run(pipeline)
    assert source.committed == [] and sum(sleeps) > 1.0


def test_step__a_bug_is_not_retried():
    class Buggy(MemorySequenceStore):
        def append_many(self, items):
            raise KeyError("a bug")

    pipeline, source, _ = _pipeline(Log(), [_records([_raw("a")])], sequences=Buggy(4))
    sleeps = _with_outage(pipeline)
    with pytest.raises(KeyError):
        _run(pipeline)
    assert sleeps == [] and source.committed == []
