"""Ingest and inference as separate workers, joined by the score-requests topic."""

import asyncio
from collections import Counter

import numpy as np
import pytest

from crmrisk.stream.events import RiskScore
from crmrisk.training.datasets.feed import dataset_events, dataset_outcomes
from crmrisk.wiring.replay import replay

from .conftest import WorkerThread, offline_scores, read_topic

pytestmark = pytest.mark.integration


def test_topic_handoff__same_scores_as_offline(
    stream_settings, credit_dataset, credit_checkpoint, models_for, redis_client
):
    records = credit_dataset.val[:300]
    events = dataset_events(records, "credit")
    scored_ids = [e.event_id for e in events if e.kind != "profile"]
    asyncio.run(replay(stream_settings, events, dataset_outcomes(records, "credit"), None, False))
    models = models_for(stream_settings)
    with (
        WorkerThread(stream_settings, models, "ingest", handoff="topic"),
        WorkerThread(stream_settings, models, "infer"),
    ):
        out = read_topic(
            stream_settings.kafka.bootstrap_servers,
            stream_settings.kafka.topics.scores,
            until=lambda got: len(got) >= len(scored_ids),
            timeout_s=120,
        )
    scores = [RiskScore.model_validate_json(r.value) for r in out]
    assert Counter(s.event_id for s in scores) == Counter(scored_ids)
    offline = offline_scores(credit_checkpoint, events)
    diffs = np.array([abs(s.probability - offline[s.event_id]) for s in scores])
    assert diffs.max() <= 1e-5
