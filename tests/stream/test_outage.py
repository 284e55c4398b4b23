"""Riding out outages: retried in place with backoff, counted, reported, nothing lost or doubled.

In-memory ports (``tests/stream/conftest.py``) with a state copy and a sink that fail the way an
unreachable Redis or broker does; the real outage (redis-server SIGKILLed under a live worker)
is ``tests/integration/test_redis_outage.py``.
"""

from __future__ import annotations

import pytest
import redis

from crmrisk.state import StateError
from crmrisk.stream.events import RiskScore
from crmrisk.stream.kafka_producer import DeliveryFailed
from crmrisk.stream.metrics import WorkerMetrics
from crmrisk.stream.outage import Outage, dependency_of
from tests.stream.conftest import ListSink, Log, LoggedState, pipeline, raw_event, records, run


def _down() -> StateError:
    try:
        raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379")
    except redis.ConnectionError as exc:
        try:
            raise StateError(f"partition state call failed: {exc}") from exc
        except StateError as wrapped:
            return wrapped


class FlakyState(LoggedState):
    """Refuses ``failures`` writes like a Redis that does not answer, then works."""

    def __init__(self, log: Log, failures: int, fail=None) -> None:
        super().__init__(log)
        self.failures, self.calls, self.fail = failures, 0, fail or _down

    def write(self, topic, writes):
        self.calls += 1
        if self.failures:
            self.failures -= 1
            raise self.fail()
        return super().write(topic, writes)


class Sleeps(list):
    """Records the backoff waits and what /health said during each."""

    def __init__(self, outage_health) -> None:
        super().__init__()
        self.health = outage_health
        self.reported: list[str | None] = []

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)
        self.reported.append(self.health())


def _with_outage(p, give_up_s: float = 900.0, **kw) -> Sleeps:
    outage = Outage(p.metrics.outage_retries, initial_s=0.1, max_s=0.4, give_up_s=give_up_s, **kw)
    sleeps = Sleeps(outage.health)
    outage._sleep = sleeps
    p.outage = outage
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


def test_step__redis_down_is_retried_with_backoff_and_reported_then_written_once():
    log = Log()
    state = FlakyState(log, failures=4)
    batch = records([raw_event("a", day=1), raw_event("b", day=2)])
    p, source, sink = pipeline(log, [batch], state=state)
    sleeps = _with_outage(p)
    (report,) = run(p)
    assert source.committed == {0: 2}
    assert sleeps == [0.1, 0.2, 0.4, 0.4]  # doubling, capped
    assert all(r and r.startswith("redis unavailable") for r in sleeps.reported)
    assert p.health() is None  # recovered
    assert _retries(p.metrics, "redis") == 4
    assert state.sequence("c1", "credit").event_ids == ["a", "b"]
    assert report.scores == 2 and len(sink.on("scores")) == 2
    assert [op[0] for op in log if op[0] != "send"] == ["write", "commit"]  # once, at the end


def test_step__a_lost_delivery_is_sent_again_a_slow_one_only_waited_for():
    for error, resends in ((DeliveryFailed("broker gone"), 1), (TimeoutError("slow"), 0)):
        log = Log()
        sink = ListSink(log, [error])
        p, source, _ = pipeline(log, [records([raw_event("a")])], sink=sink)
        _with_outage(p)
        run(p)
        assert sum(1 for op in log if op[0] == "resend") == resends
        scores = [RiskScore.model_validate_json(v).event_id for v in sink.on("scores")]
        assert scores == ["a"]  # acknowledged once either way
        assert _retries(p.metrics, "kafka") == 1
        assert source.committed == {0: 1}


def test_step__gives_up_after_one_outage_lasts_too_long_and_commits_nothing():
    p, source, _ = pipeline(Log(), [records([raw_event("a")])], state=FlakyState(Log(), 99))
    now = [0.0]
    sleeps = _with_outage(p, give_up_s=1.0, clock=lambda: now[0])

    async def advancing(seconds: float) -> None:
        now[0] += seconds
        sleeps.append(seconds)

    p.outage._sleep = advancing
    with pytest.raises(StateError):
        run(p)
    assert source.committed == {} and sum(sleeps) > 1.0


def test_step__a_bug_is_not_retried():
    state = FlakyState(Log(), 1, fail=lambda: KeyError("a bug"))
    p, source, _ = pipeline(Log(), [records([raw_event("a")])], state=state)
    sleeps = _with_outage(p)
    with pytest.raises(KeyError):
        run(p)
    assert sleeps == [] and source.committed == {}
