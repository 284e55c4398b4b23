"""The pipeline's delivery order, in milliseconds: in-memory ports, a real model and encoder.

The stores are the in-memory twins (they pass the Redis stores' contract tests); the source and
sink are lists that write down, in one shared log, what happened in which order. The same order
on the real broker and Redis is what tests/integration checks (worker kill, exactly-once state).
"""

from __future__ import annotations

import asyncio
from collections import namedtuple

import pytest
import torch

import model
from model.features import FeatureEncoder, FeatureSpec, FieldRole
from state.memory import MemoryAlertStore, MemoryScoreStore, MemorySequenceStore
from stream.alert_policy import AlertPolicy
from stream.alerting import Alerter
from stream.events import DeadLetter, RiskAlert, RiskScore
from stream.intake import EventIntake, RequestIntake
from stream.metrics import WorkerMetrics
from stream.models import DomainModel
from stream.pipeline import Pipeline, Scoring, Topics
from stream.scorer import Scorer
from tests.stream.conftest import raw_event as _raw

Record = namedtuple("Record", "topic partition offset key value timestamp")
TOPICS = Topics("dlq", "scores", "alerts", "requests")
SPEC = FeatureSpec(
    "credit", (FieldRole("amount", "numeric"),), (FieldRole("limit", "numeric"),), min_count=1
)


def _kit(version: str, seed: int = 0, bias: float = 0.0) -> DomainModel:
    fields = [{"amount": float(i)} for i in range(50)]
    encoder = FeatureEncoder.fit(SPEC, ["bill"] * 50, fields, [{"limit": 1.0}, {"limit": 9.0}])
    net = model.build(
        "qrcnn-lstm-cross", encoder.event_dim, encoder.profile_dim, (), seed=seed,
        members=1, channels=8, hidden=8, summary_dim=8, d_k=8, profile_hidden=8, head_hidden=8,
    )  # fmt: skip
    net.set_calibration(1.0, bias)  # a large bias: every score far above the alert threshold
    scorer = Scorer(
        net, version=version, event_dim=encoder.event_dim, profile_dim=encoder.profile_dim,
        quantiles=(), device=torch.device("cpu"), top_events=2,
    )  # fmt: skip
    return DomainModel("credit", version, encoder, scorer, {})


class Log(list):
    """What happened, in order, across the ports."""


class ListSource:
    def __init__(self, log: Log, batches: list[list[Record]]) -> None:
        self.log, self.batches, self.committed = log, list(batches), []

    async def next_batch(self, idle_timeout_s: float) -> list[Record]:
        return self.batches.pop(0) if self.batches else []

    async def commit(self, records) -> bool:
        self.log.append(("commit", len(records)))
        self.committed.extend(records)
        return True

    async def lag(self) -> int:
        return 0


class ListSink:
    def __init__(self, log: Log, fail_flush: bool = False) -> None:
        self.log, self.fail_flush = log, fail_flush
        self.queued: list[tuple[str, bytes | None, bytes]] = []
        self.acked: list[tuple[str, bytes | None, bytes]] = []

    async def send_many(self, topic, messages) -> int:
        batch = [(topic, k, v) for k, v in messages]
        self.queued.extend(batch)
        return len(batch)

    async def flush(self) -> None:
        if self.fail_flush:
            raise ConnectionError("broker unreachable")
        self.log.append(("flush", len(self.queued)))
        self.acked.extend(self.queued)
        self.queued.clear()

    def on(self, topic: str) -> list[bytes]:
        return [v for t, _, v in self.acked if t == topic]


class LoggedScores(MemoryScoreStore):
    def __init__(self, log: Log) -> None:
        super().__init__()
        self.log = log

    def write_many(self, items) -> None:
        self.log.append(("latest", len(items)))
        super().write_many(items)


def _records(values, start: int = 0) -> list[Record]:
    return [Record("events", 0, start + i, b"c1", v, 1000 + i) for i, v in enumerate(values)]


def _pipeline(log, batches, kit=None, sink=None, sequences=None, scores=None, **kw):
    kit = kit or _kit("v1", bias=8.0)
    sequences = sequences if sequences is not None else MemorySequenceStore(window=4)
    intake = EventIntake(sequences, {"credit": kit.encoder}, 4096, {"credit": "limit"})
    scoring = Scoring(
        {"credit": kit.scorer},
        Alerter(AlertPolicy(0.5, 0.1, 0.0), {"credit": "default"}),
        MemoryAlertStore(),
        scores if scores is not None else LoggedScores(log),
    )
    source, sink = ListSource(log, batches), sink or ListSink(log)
    return Pipeline(source, intake, sink, TOPICS, WorkerMetrics(), scoring, **kw), source, sink


def _run(pipeline: Pipeline, steps: int = 1) -> list:
    return [asyncio.run(pipeline.step(0.0)) for _ in range(steps)]


def test_step__scores_every_stored_event_then_flushes_then_writes_state_then_commits():
    log = Log()
    values = [_raw("p", kind="profile", limit=100), _raw("a", day=1), _raw("b", day=2)]
    pipeline, source, sink = _pipeline(log, [_records(values)])
    (report,) = _run(pipeline)
    assert (report.consumed, report.scores, report.dead_letters) == (3, 2, 0)
    assert [op for op, _ in log] == ["flush", "latest", "commit"]
    scores = [RiskScore.model_validate_json(v) for v in sink.on("scores")]
    assert [s.event_id for s in scores] == ["a", "b"]
    assert {s.model_version for s in scores} == {"v1"}
    assert {e.event_id for e in scores[-1].top_events} == {"a", "b"}  # top_events=2
    alerts = [RiskAlert.model_validate_json(v) for v in sink.on("alerts")]
    assert [a.event_id for a in alerts] == ["a"]  # then disarmed: hysteresis
    assert alerts[0].expected_loss == pytest.approx(alerts[0].probability * 100)
    latest = pipeline.scoring.latest_scores.read("c1", "credit")
    assert RiskScore.model_validate_json(latest).event_id == "b"
    assert len(source.committed) == 3


def test_step__a_failed_flush_writes_no_state_and_commits_nothing():
    log = Log()
    pipeline, source, _ = _pipeline(log, [_records([_raw("a")])], sink=ListSink(Log(), True))
    with pytest.raises(ConnectionError):
        _run(pipeline)
    assert log == []  # neither the latest score, nor the alert state, nor the offsets
    assert pipeline.scoring.latest_scores.read("c1", "credit") is None
    assert pipeline.scoring.alert_states.read("c1", "credit").armed
    assert source.committed == []


def test_step__a_replayed_batch_is_rescored_not_restored_and_alerts_keep_their_id():
    batch = _records([_raw("a", day=1), _raw("b", day=2)])
    sequences = MemorySequenceStore(window=4)
    first, _, _ = _pipeline(Log(), [batch], sequences=sequences, sink=ListSink(Log(), True))
    with pytest.raises(ConnectionError):  # crashed after storing, before anything was acked
        _run(first)
    again, _, sink2 = _pipeline(Log(), [batch], sequences=sequences)
    (report,) = _run(again)
    assert report.scores == 2
    assert sequences.read("c1", "credit").event_ids == ["a", "b"]  # stored once
    alerts = [RiskAlert.model_validate_json(v) for v in sink2.on("alerts")]
    assert [a.alert_id for a in alerts] == ["credit:c1:a"]


def test_step__bad_records_are_dead_lettered_and_the_batch_goes_on():
    log = Log()
    values = [b"{not json", _raw("a", day=1), _raw("x").replace(b'"credit"', b'"mars"')]
    pipeline, source, sink = _pipeline(log, [_records(values)])
    (report,) = _run(pipeline)
    letters = [DeadLetter.model_validate_json(v) for v in sink.on("dlq")]
    assert [d.reason for d in letters] == ["invalid_json", "unknown_domain"]
    assert [RiskScore.model_validate_json(v).event_id for v in sink.on("scores")] == ["a"]
    assert len(source.committed) == 3 and report.dead_letters == 2


def test_topic_handoff__an_inference_pipeline_scores_what_ingest_handed_over():
    kit = _kit("v1", bias=8.0)
    values = [_raw("p", kind="profile", limit=5), _raw("a", day=1), _raw("b", day=2)]
    sequences = MemorySequenceStore(window=4)
    ingest = Pipeline(
        ListSource(Log(), [_records(values)]),
        EventIntake(sequences, {"credit": kit.encoder}, 4096, {"credit": "limit"}),
        ListSink(Log()),
        TOPICS,
        WorkerMetrics(),
        scoring=None,
    )
    asyncio.run(ingest.step(0.0))
    requests = ingest.sink.on("requests")
    assert len(requests) == 2 and ingest.sink.on("scores") == []
    infer = Pipeline(
        ListSource(Log(), [[Record("requests", 0, i, b"c1", v, 1000) for i, v in
                            enumerate([*requests, b"garbage"])]]),
        RequestIntake(["credit"]),
        ListSink(Log()),
        TOPICS,
        WorkerMetrics(),
        Scoring({"credit": kit.scorer}, Alerter(AlertPolicy(0.5, 0.1, 0.0), {}),
                MemoryAlertStore(), MemoryScoreStore()),
    )  # fmt: skip
    asyncio.run(infer.step(0.0))
    handed = [RiskScore.model_validate_json(v) for v in infer.sink.on("scores")]
    inline, _, sink = _pipeline(Log(), [_records(values)], kit=kit)
    _run(inline)
    direct = [RiskScore.model_validate_json(v) for v in sink.on("scores")]
    assert [s.probability for s in handed] == [s.probability for s in direct]
    assert [DeadLetter.model_validate_json(v).reason for v in infer.sink.on("dlq")] == [
        "invalid_request"
    ]


def test_step__a_reloaded_model_serves_from_the_next_batch_on():
    log = Log()
    new = _kit("v2", seed=1, bias=-8.0)
    swaps = [{}, {"credit": new}]
    pipeline, _, sink = _pipeline(
        log,
        [_records([_raw("a", day=1)]), _records([_raw("b", day=2)], start=1)],
        between_batches=lambda: swaps.pop(0) if swaps else {},
    )
    _run(pipeline, steps=2)
    versions = [RiskScore.model_validate_json(v).model_version for v in sink.on("scores")]
    assert versions == ["v1", "v2"]


def test_step__a_window_the_model_cannot_read_is_a_dead_letter_not_a_crash():
    kit, other = _kit("v1"), _kit("v2")
    other.scorer.event_dim += 1  # a model of another width, as after a reload with a new encoder
    requests = Pipeline(
        ListSource(Log(), [_records([_raw("a", day=1)])]),
        EventIntake(MemorySequenceStore(4), {"credit": kit.encoder}, 4096, {}),
        ListSink(Log()),
        TOPICS,
        WorkerMetrics(),
        scoring=None,
    )
    asyncio.run(requests.step(0.0))
    records = [Record("requests", 0, 0, b"c1", requests.sink.on("requests")[0], 1000)]
    infer = Pipeline(
        ListSource(Log(), [records]),
        RequestIntake(["credit"]),
        ListSink(Log()),
        TOPICS,
        WorkerMetrics(),
        Scoring({"credit": other.scorer}, Alerter(AlertPolicy(0.5, 0.1, 0.0), {}),
                MemoryAlertStore(), MemoryScoreStore()),
    )  # fmt: skip
    report = asyncio.run(infer.step(0.0))
    assert report.scores == 0
    assert [DeadLetter.model_validate_json(v).reason for v in infer.sink.on("dlq")] == [
        "incompatible_request"
    ]


def test_step__a_window_that_breaks_the_model_is_a_dead_letter_and_the_rest_is_scored():
    kit = _kit("v1", bias=8.0)
    score = kit.scorer.score

    def fragile(requests):
        if any(r.event_id == "bad" for r in requests):
            raise RuntimeError("a kernel failed on this window")
        return score(requests)

    kit.scorer.score = fragile
    values = [_raw("a", day=1), _raw("bad", customer="c2", day=1), _raw("b", day=2)]
    records = [Record("events", 0, i, None, v, 1000) for i, v in enumerate(values)]
    pipeline, source, sink = _pipeline(Log(), [records], kit=kit)
    (report,) = _run(pipeline)
    assert [DeadLetter.model_validate_json(v).reason for v in sink.on("dlq")] == ["scoring_failed"]
    assert sorted(RiskScore.model_validate_json(v).event_id for v in sink.on("scores")) == [
        "a", "b"
    ]  # fmt: skip
    assert report.scores == 2 and len(source.committed) == 3
