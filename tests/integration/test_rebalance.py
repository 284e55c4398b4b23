"""Partition-owned state across rebalances and a zombie: two workers, one paused (SIGSTOP) past
its session timeout while events flow, so the other takes its partitions over; then it wakes up
with its batches in hand. No event is applied twice (the fence refuses the zombie's writes and
claims), none is lost: every window equals the offline one and every statement is scored."""

import signal
import subprocess
import threading
import time

import pytest
import redis

from crmrisk.state import CustomerSequenceStore
from crmrisk.stream.events import RiskScore
from crmrisk.stream.transform import window
from crmrisk.training.datasets.feed import dataset_events

from .conftest import WINDOW, crmrisk_command, read_topic, settings_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CUSTOMERS = 1500  # 10,500 events


def _start(settings, checkpoint, log_path):
    command = crmrisk_command("worker", "ingest", "--domain", "credit", "--model", str(checkpoint))
    log = open(log_path, "ab")  # noqa: SIM115 - closed with the process below
    env = settings_env(settings) | {"RISK_KAFKA__SESSION_TIMEOUT_MS": "6000"}
    process = subprocess.Popen(command, env=env, stdout=log, stderr=log)
    process.log = log
    return process


def _publish(settings, events, rate: float) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(**settings.kafka.client_config(), acks="all", linger_ms=5)
    started = time.monotonic()
    for i, event in enumerate(events):
        producer.send(settings.kafka.topics.events, key=event.key, value=event.to_bytes())
        if (ahead := i / rate - (time.monotonic() - started)) > 0:
            time.sleep(ahead)
    producer.flush()
    producer.close()


def test_rebalance__a_paused_worker_applies_nothing_twice_and_loses_nothing(
    stream_settings, credit_dataset, credit_checkpoint, tmp_path
):
    records = credit_dataset.test[:CUSTOMERS]
    events = dataset_events(records, "credit")
    scored_ids = {e.event_id for e in events if e.kind != "profile"}
    log_path = tmp_path / "workers.log"
    a = _start(stream_settings, credit_checkpoint, log_path)
    b = _start(stream_settings, credit_checkpoint, log_path)
    publisher = threading.Thread(target=_publish, args=(stream_settings, events, 400.0))
    try:
        time.sleep(8)  # both joined the group
        publisher.start()
        time.sleep(6)  # events flow through both
        a.send_signal(signal.SIGSTOP)  # a zombie from now on: silent past its session
        time.sleep(14)  # the group gives its partitions to b, which claims and serves them
        a.send_signal(signal.SIGCONT)  # wakes up with whatever it held, rejoins
        publisher.join(120)
        scores = read_topic(
            stream_settings.kafka.bootstrap_servers,
            stream_settings.kafka.topics.scores,
            lambda got: (
                {RiskScore.model_validate_json(r.value).event_id for r in got} >= scored_ids
            ),
            timeout_s=180,
        )
    finally:
        for worker in (a, b):
            worker.send_signal(signal.SIGCONT)
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
            worker.log.close()
    scored = {RiskScore.model_validate_json(r.value).event_id for r in scores}
    missing = scored_ids - scored
    assert not missing, f"{len(missing)} events never scored; log: {log_path}"
    r = stream_settings.redis
    store = CustomerSequenceStore(redis.Redis.from_url(r.url), r.key_prefix)
    windows = store.read_many([(rec.customer_id, "credit") for rec in records])
    for rec, got in zip(records, windows, strict=True):
        assert got.event_ids == [e.event_id for e in window(rec.events, WINDOW)], rec.customer_id
    text = log_path.read_text()
    print(
        f"events {len(events)}, scores {len(scores)}; "
        f"fenced {text.count('newer owner')}, zombie claims {text.count('newer consumer')}"
    )
