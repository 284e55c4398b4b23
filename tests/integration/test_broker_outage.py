"""The broker SIGKILLed under a live worker and started again on its data: nothing lost.

A broker of this test's own (the launcher's, in a folder and on ports of its own), so killing it
touches no other test; Redis is the shared one with a fresh key prefix. While the broker is
down the worker's produce/flush and commit steps are retried in place (nothing committed that
was not delivered); once it is back, every event is scored and every window equals the offline
one (0 lost, 0 stored twice). Scores are at-least-once: duplicates are counted, not forbidden.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from crmrisk.commands.services import build_launcher
from crmrisk.deploy import free_port_block
from crmrisk.settings import Settings
from crmrisk.state import CustomerSequenceStore
from crmrisk.stream.events import RiskScore
from crmrisk.stream.metrics import WorkerMetrics
from crmrisk.stream.transform import window
from crmrisk.training.datasets.feed import dataset_events
from crmrisk.wiring.clients import redis_client
from crmrisk.wiring.worker import worker_outage

from .conftest import WINDOW, WorkerThread, read_topic

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_broker_killed_mid_stream__worker_rides_it_out_nothing_lost(
    tmp_path, stream_settings, credit_dataset, models_for
):
    base = free_port_block(2)
    launcher = build_launcher(
        Settings().services.model_copy(
            update={
                "home": tmp_path / "var",
                "kafka_port": base,
                "kafka_controller_port": base + 1,
                "redis_cluster_port": free_port_block(6, 12000, 22000, offsets=(0, 10000)),
            }
        )
    )
    launcher.up(kafka=True, redis=False, timeout_s=120)
    servers = launcher.kafka.bootstrap_servers
    try:
        topics = stream_settings.kafka.topics.by_role()
        admin = KafkaAdminClient(bootstrap_servers=servers.split(","))
        admin.create_topics([NewTopic(t, 2, 1) for t in topics.values()])
        admin.close()
        settings = Settings(
            kafka={**stream_settings.kafka.model_dump(), "bootstrap_servers": servers},
            redis=stream_settings.redis.model_dump(),
            scoring={**stream_settings.scoring.model_dump(), "outage_max_backoff_s": 1.0},
        )
        events = dataset_events(credit_dataset.test[:600], "credit")
        half = len(events) // 10
        statements = [e for e in events if e.kind != "profile"]

        def publish(batch) -> None:
            producer = KafkaProducer(bootstrap_servers=servers.split(","), acks="all")
            for event in batch:
                producer.send(settings.kafka.topics.events, key=event.key, value=event.to_bytes())
            producer.flush()
            producer.close()

        def scored(count: int) -> list[RiskScore]:
            out = read_topic(
                servers,
                settings.kafka.topics.scores,
                until=lambda got: len({RiskScore.model_validate_json(r.value).event_id
                                       for r in got}) >= count,
                timeout_s=180,
            )  # fmt: skip
            return [RiskScore.model_validate_json(r.value) for r in out]

        metrics = WorkerMetrics()
        outage = worker_outage(settings, metrics)
        with WorkerThread(settings, models_for(settings), metrics=metrics, outage=outage) as w:
            w.owning()  # started and in the group before the broker is touched
            publish(events[:half])  # profiles only: the first statements come later
            scored(sum(e.kind != "profile" for e in events[:half]))
            publish(events[half:])  # a backlog the worker is in the middle of ...
            assert launcher.kafka.members[0].process.kill()  # ... when the broker dies
            at_kill = metrics.events_in._value.get()  # consumed when the broker died
            assert at_kill < len(events), "the backlog was done before the broker died"
            time.sleep(5.0)  # the worker keeps running without it
            launcher.up(kafka=True, redis=False, timeout_s=120)  # back on its data
            scores = scored(len(statements))
        counts = Counter(s.event_id for s in scores)
        assert set(counts) == {e.event_id for e in statements}
        r = settings.redis
        store = CustomerSequenceStore(redis_client(settings), r.key_prefix)
        by_customer: dict[str, list] = {}
        for event in events:
            by_customer.setdefault(event.customer_id, []).append(event)
        lost = doubled = 0
        for customer, own in by_customer.items():
            ids = store.read(customer, "credit").event_ids
            expected = [e.event_id for e in window(own, WINDOW)]
            lost += len(set(expected) - set(ids))
            doubled += len(ids) - len(set(ids))
            assert ids == expected, customer
        assert (lost, doubled) == (0, 0)
        retries = metrics.outage_retries.labels("kafka")._value.get()
        twice = sum(c - 1 for c in counts.values())
        print(f"broker outage: killed with {at_kill:.0f}/{len(events)} consumed; {twice} "
              f"scores published twice, {retries:.0f} kafka step retries")  # fmt: skip
    finally:
        launcher.down(kafka=True, redis=False, cluster=False, redis_cluster=False)
