"""The stores and a live worker on a real local Redis Cluster: 3 masters with a replica each.

``deploy.LocalRedisCluster`` (what ``crmrisk up --redis-cluster`` runs) on free ports for this
module. A batch's fenced write must land whole while its keys spread over many slots (and a
zombie's be refused); a worker scores exactly what it scores on one Redis; and
a master SIGKILLed mid-stream is replaced by its replica while the worker rides it out, with
every window equal to the offline one afterwards (0 lost, 0 stored twice: WAIT for a replica
after each batch).
"""

from __future__ import annotations

import random
import uuid

import numpy as np
import pytest
from kafka import KafkaProducer
from redis.cluster import RedisCluster

from crmrisk import lifecycle
from crmrisk.commands.services import build_launcher
from crmrisk.deploy import free_port_block
from crmrisk.deploy.redis_cluster import LocalRedisCluster
from crmrisk.lifecycle import ModelPointer
from crmrisk.model.features import FeatureEncoder
from crmrisk.settings import Settings
from crmrisk.state import (
    AlertStateStore,
    AlertTable,
    Appends,
    CustomerSequenceStore,
    LatestScoreStore,
    PartitionFence,
    PartitionWrite,
    WindowTable,
)
from crmrisk.state.keys import window_key
from crmrisk.state.pipeline import slot_of
from crmrisk.stream.events import RiskScore
from crmrisk.stream.metrics import WorkerMetrics
from crmrisk.stream.transform import event_time_ms, window
from crmrisk.training.datasets.feed import dataset_events
from crmrisk.wiring.worker import worker_outage

from .conftest import WINDOW, WorkerThread, offline_scores, read_topic

pytestmark = pytest.mark.integration


def _free_block(size: int) -> int:
    """Ports for redis-servers in cluster mode: their bus ports (+10000) must be free too."""
    return free_port_block(size, 12000, 22000, offsets=(0, 10000))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> LocalRedisCluster:
    """The launcher's Redis Cluster (``crmrisk up --redis-cluster``) in a folder and on ports
    of its own; stopped after the module."""
    services = Settings().services
    launcher = build_launcher(
        services.model_copy(
            update={
                "home": tmp_path_factory.mktemp("var"),
                "redis_cluster_port": _free_block(6),
            }
        )
    )
    states = launcher.up(kafka=False, redis=False, redis_cluster=True, timeout_s=90)
    assert sum(s.name.startswith("redis-cluster node") and s.answering for s in states) == 6
    try:
        yield launcher.redis_cluster
    finally:
        launcher.down(kafka=False, redis=False, cluster=False, redis_cluster=True)


@pytest.fixture
def client(cluster):
    rc = RedisCluster.from_url(cluster.url, socket_timeout=5, socket_connect_timeout=2)
    yield rc
    rc.close()


def _prefix() -> str:
    return f"test:{uuid.uuid4().hex[:8]}"


def _records(table: WindowTable, customers, partition: int, epoch: int) -> list:
    slots = np.array([table._slot_of[c] for c in customers])
    return [("credit", c, raw) for c, _, raw in table.records(slots, {partition: epoch})]


def test_cluster__fenced_writes_over_many_slots_read_back_whole(client):
    prefix, rng = _prefix(), random.Random(0)
    fence = PartitionFence(client, prefix, 60, wait_replicas=1, wait_timeout_ms=2000)
    table = WindowTable(4, 1, 0, 3600)
    customers = [f"c{i}" for i in range(40)]
    assert len({slot_of(window_key(prefix, "credit", c)) for c in customers}) > 10
    epoch = fence.claim("events", 0, 1).epoch
    expected = None
    for start in range(0, 300, 100):
        n = 100
        picked = [rng.choice(customers) for _ in range(n)]
        table.apply(
            Appends(
                customers=picked,
                event_ids=[f"e{rng.randrange(120)}" for _ in range(n)],
                times_ms=np.array([rng.randrange(10) * 1000 for _ in range(n)], np.int64),
                kinds=["bill"] * n,
                vectors=np.array([[rng.random()] for _ in range(n)], np.float32),
                profiles=np.zeros((n, 0), np.float32),
                is_profile=np.zeros(n, bool),
                hashes=np.zeros(n, np.uint64),
                exposure=np.full(n, np.nan),
                partitions=np.zeros(n, np.int32),
                redelivered=np.zeros(n, bool),
            ),
            now_s=0.0,
            serial=start + 1,
        )
        write = PartitionWrite(0, epoch, expected, start + n,
                               windows=_records(table, sorted(set(picked)), 0, epoch))  # fmt: skip
        assert fence.write("events", [write]) == []
        expected = start + n
    stored = CustomerSequenceStore(client, prefix).read_many([(c, "credit") for c in customers])
    for customer, got in zip(customers, stored, strict=True):
        held = table.read(customer)
        assert got.event_ids == ([] if held is None else held.event_ids)
    # A zombie's write: its partition is fenced, and per key a newer owner's value stays.
    newer = fence.claim("events", 0, 2).epoch
    stale = PartitionWrite(0, epoch, expected, expected + 1,
                           windows=_records(table, customers[:3], 0, epoch))  # fmt: skip
    assert [r.reason for r in fence.write("events", [stale])] == ["fenced"]
    assert fence.write("events", [PartitionWrite(0, newer, expected, expected + 1)]) == []


def test_cluster__alert_states_scores_fences_and_pointer(client, tmp_path):
    prefix = _prefix()
    fence = PartitionFence(client, prefix, 60, wait_replicas=1, wait_timeout_ms=2000)
    table = AlertTable(60)
    keys = [(f"c{i}", "credit") for i in range(50)]
    slots = table.slots([c for c, _ in keys], np.zeros(50, np.int32), 0.0, 1)
    table.armed[slots] = [i % 2 == 0 for i in range(50)]
    epoch = fence.claim("events", 1, 1).epoch
    alerts = [("credit", c, raw) for c, _, raw in table.records(slots, {1: epoch})]
    scores = [("credit", c, c.encode()) for c, _ in keys]
    write = PartitionWrite(1, epoch, None, 50, alerts=alerts, scores=scores)
    assert fence.write("events", [write]) == []
    assert [s.armed for s in AlertStateStore(client, prefix).read_many(keys)] == [
        i % 2 == 0 for i in range(50)
    ]
    assert LatestScoreStore(client, prefix, 60).read_many(keys) == [c.encode() for c, _ in keys]
    assert fence.applied("events", [0, 1]) == {0: None, 1: 50}
    pointer = ModelPointer(client, prefix, 5, tmp_path / "live")
    pointer.set("credit", "v0001", "initial", expected=None)
    pointer.set("credit", "v0002", "promoted", expected="v0001")
    assert client.hget(f"{prefix}:model:{{credit}}:current", "version") == b"v0002"
    assert [c.version for c in pointer.history("credit")] == ["v0002", "v0001"]


def _settings(stream_settings: Settings, cluster: LocalRedisCluster) -> Settings:
    return Settings(
        kafka=stream_settings.kafka.model_dump(),
        redis={**stream_settings.redis.model_dump(), "url": cluster.url, "cluster": True,
               "wait_replicas": 1, "socket_timeout_s": 3.0},
        scoring={**stream_settings.scoring.model_dump(), "outage_max_backoff_s": 0.5},
    )  # fmt: skip


def _publish(settings: Settings, events) -> None:
    producer = KafkaProducer(**settings.kafka.client_config(), acks="all", linger_ms=5)
    for event in events:
        producer.send(settings.kafka.topics.events, key=event.key, value=event.to_bytes())
    producer.flush()
    producer.close()


def _scored(settings: Settings, count: int) -> list[RiskScore]:
    out = read_topic(
        settings.kafka.bootstrap_servers,
        settings.kafka.topics.scores,
        until=lambda got: (
            len({RiskScore.model_validate_json(r.value).event_id for r in got}) >= count
        ),
        timeout_s=120,
    )
    return [RiskScore.model_validate_json(r.value) for r in out]


def _windows_match_offline(client, settings, events, encoder) -> tuple[int, int]:
    r = settings.redis
    store = CustomerSequenceStore(client, r.key_prefix)
    by_customer: dict[str, list] = {}
    for event in events:
        by_customer.setdefault(event.customer_id, []).append(event)
    lost = doubled = 0
    customers = sorted(by_customer)
    stored_windows = store.read_many([(c, "credit") for c in customers])
    for customer, stored in zip(customers, stored_windows, strict=True):
        expected = window(by_customer[customer], WINDOW)
        doubled += len(stored.event_ids) - len(set(stored.event_ids))
        lost += len({e.event_id for e in expected} - set(stored.event_ids))
        assert stored.event_ids == [e.event_id for e in expected], customer
        assert stored.event_times_ms.tolist() == [event_time_ms(e) for e in expected]
        np.testing.assert_allclose(
            stored.events, [encoder.encode_event(e.kind, e.fields) for e in expected], atol=1e-6
        )
    return lost, doubled


def test_cluster__a_worker_scores_as_offline_and_rides_out_a_master_failover(
    cluster, client, stream_settings, credit_dataset, credit_checkpoint, models_for
):
    settings = _settings(stream_settings, cluster)
    events = dataset_events(credit_dataset.test[:90], "credit")
    half = len(events) // 2
    statements = [e for e in events if e.kind != "profile"]
    first_half = [e for e in events[:half] if e.kind != "profile"]
    metrics = WorkerMetrics()
    outage = worker_outage(settings, metrics)
    with WorkerThread(settings, models_for(settings), metrics=metrics, outage=outage):
        _publish(settings, events[:half])
        _scored(settings, len(first_half))
        victim = cluster.masters_now()[0]
        assert cluster.kill(victim)  # SIGKILL a master mid-stream
        _publish(settings, events[half:])  # arrives while its slots have no master
        took = cluster.wait_ok(60)  # the replica took over
        scores = _scored(settings, len(statements))
        masters = cluster.masters_now()
    assert victim not in masters and len(masters) == 3
    offline = offline_scores(credit_checkpoint, events)
    assert {s.event_id for s in scores} == {e.event_id for e in statements}
    # Exactly the offline scores, retried batches included: a redelivered event is scored as
    # of itself, never with the later events its retry found in the window.
    assert max(abs(s.probability - offline[s.event_id]) for s in scores) <= 1e-5
    manifest = lifecycle.load_checkpoint(credit_checkpoint)[1]
    encoder = FeatureEncoder.from_dict(manifest["encoder"])
    assert _windows_match_offline(client, settings, events, encoder) == (0, 0)
    retries = metrics.outage_retries.labels("redis")._value.get()
    print(f"failover of :{victim} after {took:.1f} s, {retries:.0f} retries by the worker")
    cluster.node(victim).start()  # comes back as a replica of the promoted one
    cluster.wait_ok(60)
    assert len(cluster.masters_now()) == 3
