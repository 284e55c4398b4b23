"""Replaying credit customers end to end: one score per event, equal to the offline model's."""

import asyncio
from collections import Counter

import numpy as np
import pytest
import redis

from crmrisk.state import CustomerSequenceStore
from crmrisk.stream.events import RiskScore
from crmrisk.stream.transform import window
from crmrisk.training.datasets.feed import dataset_events, dataset_outcomes
from crmrisk.wiring.replay import replay

from .conftest import WINDOW, WorkerThread, offline_scores, read_topic

pytestmark = pytest.mark.integration

CUSTOMERS = 1500  # x (6 statements + 1 profile) = 10,500 events, 9,000 of them scored


def test_replay__one_score_per_event_equal_to_offline(
    stream_settings, credit_dataset, credit_checkpoint, models_for, redis_client
):
    records = (credit_dataset.train + credit_dataset.test)[:CUSTOMERS]
    events = dataset_events(records, "credit")
    assert len(events) >= 10_000
    scored_ids = [e.event_id for e in events if e.kind != "profile"]
    topics = stream_settings.kafka.topics

    asyncio.run(replay(stream_settings, events, dataset_outcomes(records, "credit"), None, False))
    with WorkerThread(stream_settings, models_for(stream_settings)):
        records_out = read_topic(
            stream_settings.kafka.bootstrap_servers,
            topics.scores,
            until=lambda got: len(got) >= len(scored_ids),
            timeout_s=240,
        )
    scores = [RiskScore.model_validate_json(r.value) for r in records_out]

    counts = Counter(s.event_id for s in scores)
    assert set(counts) == set(scored_ids)
    assert max(counts.values()) == 1, "an event was scored twice"
    assert {s.model_version for s in scores} == {"it-random-0"}

    offline = offline_scores(credit_checkpoint, events)
    diffs = np.array([abs(s.probability - offline[s.event_id]) for s in scores])
    assert diffs.max() <= 1e-5, f"max |stream - offline| = {diffs.max():.2e}"

    # Redis holds each customer's full window; keys are customer ids on the wire.
    assert all(r.key == s.customer_id.encode() for r, s in zip(records_out, scores, strict=True))
    r = stream_settings.redis
    store = CustomerSequenceStore(redis.Redis.from_url(r.url), r.key_prefix)
    windows = store.read_many([(rec.customer_id, "credit") for rec in records])
    for rec, got in zip(records, windows, strict=True):
        assert got.event_ids == [e.event_id for e in window(rec.events, WINDOW)]
        assert got.profile is not None
