"""Redis killed mid-stream (SIGKILL) and restarted empty, under a live worker on the real broker.

The worker keeps running (its failed step retried with backoff, /health red meanwhile), the live
model version is recovered from the pointer's journal without anybody promoting again, every
customer's window is rebuilt from crm.events before scoring resumes, and afterwards each window
equals the offline window of the events published so far: 0 events lost, 0 stored twice. A
version promoted after the restart is then served within the reload interval.

A dedicated ``redis-server`` on a free port (no persistence: a restart loses everything, the
hard case) holds this test's state, so killing it touches no other test.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import redis
import torch
from kafka import KafkaAdminClient, KafkaProducer

from crmrisk import lifecycle, model
from crmrisk.lifecycle.promoter import ModelPromoter
from crmrisk.lifecycle.registry import ModelRegistry
from crmrisk.model.features import FeatureEncoder
from crmrisk.settings import Settings
from crmrisk.state import CustomerSequenceStore
from crmrisk.stream.events import RiskScore
from crmrisk.stream.metrics import WorkerMetrics, serve
from crmrisk.stream.transform import event_time_ms, window
from crmrisk.training.datasets.feed import dataset_events
from crmrisk.wiring.clients import model_pointer
from crmrisk.wiring.models import follow_pointer
from crmrisk.wiring.worker import worker_outage

from .conftest import WINDOW, WorkerThread, read_topic

pytestmark = pytest.mark.integration

RELOAD_S = 1.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _redis(port: int, workdir: Path) -> subprocess.Popen:
    process = subprocess.Popen(  # `make test` installs redis-server (the launcher needs it too)
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            return process
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _health(port: int) -> dict:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as reply:
            return json.loads(reply.read())
    except urllib.error.HTTPError as error:  # 503 carries the report too
        return json.loads(error.read())


def _wait(condition, timeout_s: float, what: str) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"{what} within {timeout_s} s")
        time.sleep(0.1)
    return time.monotonic() - started


def _committed(settings: Settings, topic: str, group: str) -> int:
    """Records of ``topic`` the consumer group has committed, over its partitions."""
    admin = KafkaAdminClient(**settings.kafka.client_config())
    try:
        offsets = admin.list_group_offsets(group).get(group, {})
    finally:
        admin.close()
    return sum(meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset > 0)


def _publish(producer: KafkaProducer, topic: str, events) -> None:
    for event in events:
        producer.send(topic, key=event.key, value=event.to_bytes())
    producer.flush()


def _scored(settings: Settings, count: int, timeout_s: float = 90) -> list[RiskScore]:
    out = read_topic(
        settings.kafka.bootstrap_servers,
        settings.kafka.topics.scores,
        until=lambda got: (
            len({RiskScore.model_validate_json(r.value).event_id for r in got}) >= count
        ),
        timeout_s=timeout_s,
    )
    return [RiskScore.model_validate_json(r.value) for r in out]


def _assert_windows_offline(store: CustomerSequenceStore, encoder: FeatureEncoder, events) -> None:
    """Every window equals the offline one: the last W statements by (time, id), same encoding,
    and the latest profile; 0 events lost, 0 stored twice."""
    by_customer: dict[str, list] = {}
    for event in events:
        by_customer.setdefault(event.customer_id, []).append(event)
    lost = doubled = 0
    for customer, own in by_customer.items():
        stored = store.read(customer, "credit")
        expected = window(own, WINDOW)
        ids = stored.event_ids
        doubled += len(ids) - len(set(ids))
        lost += len({e.event_id for e in expected} - set(ids))
        assert ids == [e.event_id for e in expected], customer
        assert stored.event_times_ms.tolist() == [event_time_ms(e) for e in expected]
        np.testing.assert_allclose(
            stored.events, [encoder.encode_event(e.kind, e.fields) for e in expected], atol=1e-6
        )
        profile = max((e for e in own if e.kind == "profile"), key=event_time_ms)
        np.testing.assert_allclose(stored.profile, encoder.encode_profile(profile.fields))
    assert (lost, doubled) == (0, 0)


def test_redis_killed_mid_stream__worker_rides_it_out_and_rebuilds_every_window(
    tmp_path, stream_settings, new_topic, credit_dataset, credit_checkpoint
):
    torch.set_num_threads(1)
    port = _free_port()
    server = _redis(port, tmp_path)
    updates = new_topic(prefix="it-model-updates")
    settings = Settings(
        kafka={
            **stream_settings.kafka.model_dump(),
            "topics": {**stream_settings.kafka.topics.model_dump(), "model_updates": updates},
        },
        redis={**stream_settings.redis.model_dump(), "url": f"redis://127.0.0.1:{port}/0"},
        scoring={**stream_settings.scoring.model_dump(), "outage_max_backoff_s": 0.5},
        model={"dir": str(tmp_path / "models")},
        training={"reload_check_every_s": RELOAD_S},
    )
    registry = ModelRegistry(settings.model.dir)
    v1 = registry.import_checkpoint("credit", credit_checkpoint)
    network, manifest = lifecycle.load_checkpoint(credit_checkpoint)
    other = model.build(
        manifest["variant"], network.config.event_dim, network.config.profile_dim, (), seed=1
    )
    v2 = registry.publish("credit", other, {"encoder": manifest["encoder"]}, parent=v1.version)
    producer = KafkaProducer(**settings.kafka.client_config(), acks="all", linger_ms=5)
    promoter = ModelPromoter(registry, model_pointer(settings), producer, updates)
    promoter.promote("credit", v1.version, "initial", expected=None)

    events = dataset_events(credit_dataset.test[:60], "credit")
    parts = [events[: len(events) // 3], events[len(events) // 3 : 2 * len(events) // 3]]
    parts.append(events[2 * len(events) // 3 :])
    statements = [[e for e in part if e.kind != "profile"] for part in parts]
    topic = settings.kafka.topics.events

    watcher, models = follow_pointer(settings, ["credit"])
    metrics = WorkerMetrics()
    outage = worker_outage(settings, metrics)
    health_port = _free_port()
    http = serve(metrics, health_port, checks=[outage.health, watcher.health])
    try:
        with WorkerThread(settings, models, watcher=watcher, metrics=metrics, outage=outage):
            _publish(producer, topic, parts[0])
            _scored(settings, len(statements[0]))
            assert _health(health_port)["status"] == "ok"
            # The premise: Redis dies after the first part is committed, so what it loses can
            # only come back by a rebuild from the topic. (Scored is not yet committed: a crash
            # before the commit replays the records as new, which is not what this tests.)
            group = f"{settings.kafka.group_id}-ingest"
            _wait(lambda: _committed(settings, topic, group) >= len(parts[0]), 30,
                  "the first part committed")  # fmt: skip

            server.kill()  # SIGKILL: a crash, no shutdown, nothing persisted
            server.wait(10)
            _publish(producer, topic, parts[1])  # arrives while Redis is down
            down_s = _wait(
                lambda: _health(health_port)["status"] != "ok", 30, "/health red during the outage"
            )
            report = _health(health_port)
            assert any("redis unavailable" in r for r in report["reasons"]), report
            time.sleep(2.0)  # retrying meanwhile, not crashing (WorkerThread would re-raise)
            retries_during = metrics.outage_retries.labels("redis")._value.get()
            assert retries_during >= 2

            server = _redis(port, tmp_path)  # back, empty: windows, marks and pointer copy gone
            _scored(settings, len(statements[0]) + len(statements[1]))
            _wait(lambda: _health(health_port)["status"] == "ok", 20, "/health ok again")
            cache = redis.Redis(port=port)
            pointer_key = f"{settings.redis.key_prefix}:model:{{credit}}:current"
            _wait(
                lambda: cache.hget(pointer_key, "version") == v1.version.encode(),
                4 * RELOAD_S + 5,
                "the pointer's Redis copy restored from the journal",
            )
            # A fresh worker finds the live version by itself (nobody promoted again).
            fresh, fresh_models = follow_pointer(settings, ["credit"])
            assert fresh_models["credit"].version == v1.version
            fresh.close()

            _publish(producer, topic, parts[2])
            scores = _scored(settings, sum(len(s) for s in statements))

            promoter.promote("credit", v2.version, "after the restart", expected=v1.version)
            _wait(lambda: watcher.live("credit") == v2.version, 4 * RELOAD_S + 5, "v0002 live")
    finally:
        http.shutdown()
        watcher.close()
        producer.close()
    try:
        store = CustomerSequenceStore(redis.Redis(port=port), settings.redis.key_prefix)
        _assert_windows_offline(store, FeatureEncoder.from_dict(manifest["encoder"]), events)
        # Every statement scored; a batch redone after the restart may score some twice
        # (scores are at-least-once), never with a truncated history after the rebuild.
        counts = Counter(s.event_id for s in scores)
        assert set(counts) == {e.event_id for part in statements for e in part}
        assert metrics.rebuilt._value.get() >= len(parts[0])
        print(f"outage: /health red after {down_s:.1f} s, {retries_during:.0f} retries; "
              f"rebuilt {metrics.rebuilt._value.get():.0f} events; "
              f"{sum(c - 1 for c in counts.values())} scores published twice")  # fmt: skip
    finally:
        server.kill()


def test_lost_tail__redis_back_from_an_older_copy_is_found_and_the_gap_restored(
    tmp_path, stream_settings, credit_dataset, models_for, credit_checkpoint
):
    """A host crash loses Redis's last writes (the append-only file is fsynced once a second):
    Redis comes back as a copy taken some batches earlier, while the group's committed offsets
    say those batches were applied. The worker finds the gap at its next write and restores it
    from crm.events: afterwards every window equals the offline one, 0 lost, 0 doubled."""
    torch.set_num_threads(1)
    port = _free_port()
    server = _redis(port, tmp_path)
    settings = Settings(
        kafka=stream_settings.kafka.model_dump(),
        redis={**stream_settings.redis.model_dump(), "url": f"redis://127.0.0.1:{port}/0"},
        scoring={**stream_settings.scoring.model_dump(), "outage_max_backoff_s": 0.5},
    )
    producer = KafkaProducer(**settings.kafka.client_config(), acks="all", linger_ms=5)
    events = dataset_events(credit_dataset.test[:60], "credit")
    parts = [events[: len(events) // 3], events[len(events) // 3 : 2 * len(events) // 3]]
    parts.append(events[2 * len(events) // 3 :])
    statements = [[e for e in part if e.kind != "profile"] for part in parts]
    topic = settings.kafka.topics.events
    cache = redis.Redis(port=port)
    metrics = WorkerMetrics()
    try:
        with WorkerThread(settings, models_for(settings), metrics=metrics) as worker:
            worker.owning()
            _publish(producer, topic, parts[0])
            _scored(settings, len(statements[0]))
            cache.save()  # the copy a crash falls back to ...
            (tmp_path / "dump.rdb").rename(tmp_path / "older.rdb")
            _publish(producer, topic, parts[1])  # ... then batches Redis acknowledged
            _scored(settings, len(statements[0]) + len(statements[1]))
            rebuilt_before = metrics.rebuilt._value.get()

            server.kill()  # the crash: the second part's writes are gone with it
            server.wait(10)
            (tmp_path / "older.rdb").rename(tmp_path / "dump.rdb")
            server = _redis(port, tmp_path)  # back from the older copy
            assert cache.dbsize() > 0, "Redis came back empty, not from the copy"
            _publish(producer, topic, parts[2])
            _scored(settings, sum(len(s) for s in statements))
            _wait(lambda: metrics.rebuilt._value.get() > rebuilt_before, 30, "the gap restored")
    finally:
        producer.close()
    try:
        encoder = FeatureEncoder.from_dict(
            lifecycle.load_checkpoint(credit_checkpoint)[1]["encoder"]
        )
        _assert_windows_offline(
            CustomerSequenceStore(cache, settings.redis.key_prefix), encoder, events
        )
        print(f"lost tail: {metrics.rebuilt._value.get() - rebuilt_before:.0f} events restored")
    finally:
        server.kill()
