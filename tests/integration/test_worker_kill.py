"""A worker SIGKILLed mid-replay and restarted: nothing lost, nothing stored twice.

State is exactly-once (the offset guard refuses redelivered appends); scores are at-least-once
(a batch scored but not committed before the kill is scored again after the restart).
"""

import asyncio
import signal
import subprocess
from collections import Counter

import pytest
import redis

from crmrisk.state import CustomerSequenceStore
from crmrisk.stream.events import RiskScore
from crmrisk.stream.transform import window
from crmrisk.training.datasets.feed import dataset_events, dataset_outcomes
from crmrisk.wiring.replay import replay

from .conftest import WINDOW, crmrisk_command, read_topic, settings_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CUSTOMERS = 1200  # 8,400 events, 7,200 scored


def _start(settings, checkpoint, log_path):
    command = crmrisk_command("worker", "ingest", "--domain", "credit", "--model", str(checkpoint))
    log = open(log_path, "ab")  # noqa: SIM115 - closed with the process below
    process = subprocess.Popen(command, env=settings_env(settings), stdout=log, stderr=log)
    process.log = log
    return process


def test_worker_kill__no_event_lost_none_stored_twice(
    stream_settings, credit_dataset, credit_checkpoint, redis_client, tmp_path
):
    records = credit_dataset.test[:CUSTOMERS]
    events = dataset_events(records, "credit")
    scored_ids = {e.event_id for e in events if e.kind != "profile"}
    bootstrap, topics = stream_settings.kafka.bootstrap_servers, stream_settings.kafka.topics
    asyncio.run(replay(stream_settings, events, dataset_outcomes(records, "credit"), None, False))

    first = _start(stream_settings, credit_checkpoint, tmp_path / "worker.log")
    try:
        partial = read_topic(
            bootstrap, topics.scores, lambda got: len(got) >= len(scored_ids) // 3, 180, 0.0
        )
        assert len(partial) < len(scored_ids), "the worker finished before it could be killed"
        first.send_signal(signal.SIGKILL)
        assert first.wait(30) == -signal.SIGKILL
    finally:
        first.kill()
        first.log.close()

    second = _start(stream_settings, credit_checkpoint, tmp_path / "worker.log")
    try:
        scores = read_topic(
            bootstrap,
            topics.scores,
            lambda got: (
                {RiskScore.model_validate_json(r.value).event_id for r in got} >= scored_ids
            ),
            timeout_s=240,
        )
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            second.wait(30)
        except subprocess.TimeoutExpired:
            second.kill()
        second.log.close()

    counts = Counter(RiskScore.model_validate_json(r.value).event_id for r in scores)
    missing = scored_ids - set(counts)
    assert not missing, f"{len(missing)} events never scored; log: {tmp_path / 'worker.log'}"
    rescored = sum(c - 1 for c in counts.values())
    print(f"events {len(scored_ids)}, scores {len(scores)}, re-published {rescored}")

    # The state is exact: every customer's window is its full history, each event once.
    r = stream_settings.redis
    store = CustomerSequenceStore(redis.Redis.from_url(r.url), r.key_prefix)
    windows = store.read_many([(rec.customer_id, "credit") for rec in records])
    for rec, got in zip(records, windows, strict=True):
        assert got.event_ids == [e.event_id for e in window(rec.events, WINDOW)]
