"""The pipeline's delivery order, in milliseconds: in-memory ports, a real model and encoder.

The state's durable copy is the in-memory twin (it passes the Redis fence's contract tests); the
source and sink are lists that write down, in one shared log, what happened in which order. The
same order on the real broker and Redis is what tests/integration checks (worker kill,
exactly-once state).
"""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from crmrisk.stream.events import DeadLetter, RiskAlert, RiskScore
from tests.stream.conftest import (
    ListSink,
    ListSource,
    Log,
    LoggedState,
    Record,
    kit,
    pipeline,
    raw_event,
    records,
    run,
)


def _ops(log: Log) -> list:
    return [(op[0], op[1]) if op[0] == "send" else op[0] for op in log]


def test_step__scores_published_at_once_then_alerts_then_state_then_commit():
    log = Log()
    values = [raw_event("p", kind="profile", limit=100), raw_event("a", day=1),
              raw_event("b", day=2)]  # fmt: skip
    p, source, sink = pipeline(log, [records(values)])
    (report,) = run(p)
    assert (report.consumed, report.scores, report.dead_letters, report.alerts) == (3, 2, 0, 1)
    assert _ops(log) == [("send", "scores"), ("send", "alerts"), "write", "commit"]
    scores = [RiskScore.model_validate_json(v) for v in sink.on("scores")]
    assert [s.event_id for s in scores] == ["a", "b"]
    assert {s.model_version for s in scores} == {"v1"}
    assert {s.exposure for s in scores} == {100.0}  # the profile's limit: the exposure field
    assert {e.event_id for e in scores[-1].top_events} == {"a", "b"}  # top_events=2
    alerts = [RiskAlert.model_validate_json(v) for v in sink.on("alerts")]
    assert [a.event_id for a in alerts] == ["a"]  # then disarmed: hysteresis
    assert alerts[0].expected_loss == pytest.approx(alerts[0].probability * 100)
    state = p.state
    assert RiskScore.model_validate_json(state.latest_score("c1", "credit")).event_id == "b"
    assert state.sequence("c1", "credit").event_ids == ["a", "b"]
    assert not state.alert_state("c1", "credit").armed
    assert source.committed == {0: 3}
    assert state.writes == 1  # one write for the whole batch


def test_step__a_failed_delivery_writes_no_state_and_commits_nothing():
    log = Log()
    failing = ListSink(Log(), [ConnectionError("broker unreachable")])
    p, source, _ = pipeline(log, [records([raw_event("a")])], sink=failing)
    with pytest.raises(ConnectionError):
        run(p)
    assert log == []  # neither the state nor the offsets
    assert p.state.sequence("c1", "credit").event_ids == []
    assert source.committed == {}


def test_step__a_crash_before_the_alert_was_published_fires_it_again_with_its_id():
    batch = records([raw_event("a", day=1), raw_event("b", day=2)])
    state = LoggedState(Log())
    first, _, _ = pipeline(Log(), [batch], state=state)

    def crash_on_alerts(topic, messages, delivery, send=first.sink.send):
        if topic == "alerts":
            raise ConnectionError("crashed after the scores, before the alert")
        return send(topic, messages, delivery)

    first.sink.send = crash_on_alerts
    with pytest.raises(ConnectionError):
        run(first)
    assert state.sequence("c1", "credit").event_ids == []  # nothing written
    again, source, sink2 = pipeline(Log(), [batch], state=state)
    (report,) = run(again)
    assert report.scores == 2
    assert state.sequence("c1", "credit").event_ids == ["a", "b"]
    alerts = [RiskAlert.model_validate_json(v) for v in sink2.on("alerts")]
    assert [a.alert_id for a in alerts] == ["credit:c1:a"]
    assert source.committed == {0: 2}


def test_step__a_batch_redelivered_after_its_state_was_written_is_rescored_not_applied():
    batch = records([raw_event("a", day=1), raw_event("b", day=2)])
    state = LoggedState(Log())
    first, source, _ = pipeline(Log(), [batch], state=state)

    async def crash(offsets):
        raise ConnectionError("crashed between the state write and the commit")

    source.commit = crash
    with pytest.raises(ConnectionError):
        run(first)
    assert state.sequence("c1", "credit").event_ids == ["a", "b"]
    again, source2, sink2 = pipeline(Log(), [batch], state=state)
    (report,) = run(again)
    assert report.scores == 2
    scores = [RiskScore.model_validate_json(v) for v in sink2.on("scores")]
    assert [s.event_id for s in scores] == ["a", "b"]
    assert [len(s.top_events) for s in scores] == [1, 2]  # each as of itself, not its future
    assert again.metrics.stored.labels("redelivered")._value.get() == 2
    assert state.sequence("c1", "credit").event_ids == ["a", "b"]  # applied once
    assert sink2.on("alerts") == []  # the alert was published before the state was written
    assert source2.committed == {0: 2}


def test_step__bad_records_are_dead_lettered_and_the_batch_goes_on():
    values = [b"{not json", raw_event("a", day=1), raw_event("x").replace(b'"credit"', b'"mars"')]
    p, source, sink = pipeline(Log(), [records(values)])
    (report,) = run(p)
    letters = [DeadLetter.model_validate_json(v) for v in sink.on("dlq")]
    assert [d.reason for d in letters] == ["invalid_json", "unknown_domain"]
    assert [RiskScore.model_validate_json(v).event_id for v in sink.on("scores")] == ["a"]
    assert source.committed == {0: 3} and report.dead_letters == 2


def test_step__same_event_id_other_content_is_a_dead_letter_an_exact_duplicate_is_not():
    values = [raw_event("a", day=1), raw_event("a", day=1), raw_event("a", day=1, amount=7)]
    p, _, sink = pipeline(Log(), [records(values)])
    (report,) = run(p)
    letters = [DeadLetter.model_validate_json(v) for v in sink.on("dlq")]
    assert [d.reason for d in letters] == ["event_id_conflict"]
    assert "already stored with other content" in letters[0].error
    assert report.scores == 1
    assert p.metrics.stored.labels("duplicates")._value.get() == 1


def test_overlap__scores_of_the_next_batch_never_wait_for_the_alerts_reasons():
    """Batch 1 fires an alert whose explanation is slow; batch 2's scores go out meanwhile, and
    the commits stay in order."""
    log = Log()
    batches = [records([raw_event("a", day=1)]),
               records([raw_event("b", customer="c2", day=1)], start=1, key=b"c2")]  # fmt: skip
    p, source, sink = pipeline(log, batches)
    release = threading.Event()
    alerts = p.stages.scoring.alerter.alerts

    def slow(firing, explain=True):
        release.wait(5)
        return alerts(firing, explain)

    p.stages.scoring.alerter.alerts = slow

    async def go():
        await p.step(0.0)
        await p.step(0.0)
        await asyncio.sleep(0.05)
        published = [RiskScore.model_validate_json(v).event_id for t, _, v in sink.sent
                     if t == "scores"]  # fmt: skip
        committed = dict(source.committed)
        release.set()
        await p.settle()
        return published, committed

    published, committed_before = asyncio.run(go())
    assert published == ["a", "b"]  # both scores out while the first alert waited
    assert committed_before == {}  # nothing committed before the first batch's alert
    commits = [op[1] for op in log if op[0] == "commit"]
    assert commits == [{0: 1}, {0: 2}]
    assert [RiskAlert.model_validate_json(v).event_id for v in sink.on("alerts")] == ["a", "b"]


def test_topic_handoff__an_inference_pipeline_scores_what_ingest_handed_over():
    model_kit = kit("v1", bias=8.0)
    values = [raw_event("p", kind="profile", limit=5), raw_event("a", day=1),
              raw_event("b", day=2)]  # fmt: skip
    ingest, _, sink = pipeline(Log(), [records(values)], model_kit=model_kit, scoring=False)
    run(ingest)
    requests = sink.on("requests")
    assert len(requests) == 2 and sink.on("scores") == []
    handed = records([*requests, b"garbage"], topic="requests")
    infer, _, infer_sink = pipeline(Log(), [handed], model_kit=model_kit, events=False,
                                    topic="requests")  # fmt: skip
    run(infer)
    scores = [RiskScore.model_validate_json(v) for v in infer_sink.on("scores")]
    inline, _, inline_sink = pipeline(Log(), [records(values)], model_kit=model_kit)
    run(inline)
    direct = [RiskScore.model_validate_json(v) for v in inline_sink.on("scores")]
    assert [s.probability for s in scores] == [s.probability for s in direct]
    assert [s.top_events for s in scores] == [s.top_events for s in direct]
    assert [DeadLetter.model_validate_json(v).reason for v in infer_sink.on("dlq")] == [
        "invalid_request"
    ]
    assert infer.state.alert_state("c1", "credit").armed is False  # the infer side decides


def test_step__a_reloaded_model_serves_from_the_next_batch_on():
    new = kit("v2", seed=1, bias=-8.0)
    swaps = [{}, {"credit": new}]
    p, _, sink = pipeline(
        Log(),
        [records([raw_event("a", day=1)]), records([raw_event("b", day=2)], start=1)],
        between_batches=lambda: swaps.pop(0) if swaps else {},
    )
    run(p, steps=2)
    versions = [RiskScore.model_validate_json(v).model_version for v in sink.on("scores")]
    assert versions == ["v1", "v2"]


def test_step__a_window_the_model_cannot_read_is_a_dead_letter_not_a_crash():
    model_kit, other = kit("v1"), kit("v2")
    other.scorer.event_dim += 1  # a model of another width, as after a reload with a new encoder
    ingest, _, sink = pipeline(Log(), [records([raw_event("a", day=1)])], model_kit=model_kit,
                               scoring=False)  # fmt: skip
    run(ingest)
    handed = records(sink.on("requests"), topic="requests")
    infer, _, infer_sink = pipeline(Log(), [handed], model_kit=other, events=False,
                                    topic="requests")  # fmt: skip
    (report,) = run(infer)
    assert report.scores == 0
    assert [DeadLetter.model_validate_json(v).reason for v in infer_sink.on("dlq")] == [
        "incompatible_request"
    ]


def test_step__a_window_that_breaks_the_model_is_a_dead_letter_and_the_rest_is_scored():
    model_kit = kit("v1", bias=8.0)
    score = model_kit.scorer.score_windows

    def fragile(windows):
        if any(b"bad\0" in ids for ids in windows.ids):
            raise RuntimeError("a kernel failed on this window")
        return score(windows)

    model_kit.scorer.score_windows = fragile
    values = [raw_event("a", day=1), raw_event("bad", customer="c2", day=1), raw_event("b", day=2)]
    batch = [Record("events", 0, i, None, v, 1000) for i, v in enumerate(values)]
    p, source, sink = pipeline(Log(), [batch], model_kit=model_kit)
    (report,) = run(p)
    letters = [DeadLetter.model_validate_json(v) for v in sink.on("dlq")]
    assert [d.reason for d in letters] == ["scoring_failed"]
    assert letters[0].original() == values[1]
    assert sorted(RiskScore.model_validate_json(v).event_id for v in sink.on("scores")) == [
        "a", "b"
    ]  # fmt: skip
    assert report.scores == 2 and source.committed == {0: 3}


def test_metrics__event_to_score_latency_is_observed_for_every_score():
    p, _, _ = pipeline(Log(), [records([raw_event("a", day=1), raw_event("b", day=2)])])
    run(p)
    assert len(p.metrics.recent_latency_ms) == 2
    assert np.isfinite(list(p.metrics.recent_latency_ms)).all()


def test_source__records_of_partitions_not_owned_are_left_alone():
    batch = records([raw_event("a", day=1)], partition=0) + records(
        [raw_event("x", customer="c2")], partition=1, key=b"c2"
    )
    p, source, sink = pipeline(Log(), [batch], source=ListSource(Log(), [batch], owned={0}))
    (report,) = run(p)
    assert report.consumed == 1 and source.committed == {0: 1}
    assert [RiskScore.model_validate_json(v).event_id for v in sink.on("scores")] == ["a"]
