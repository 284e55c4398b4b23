"""The trainer on a replayed domain, against the real broker and Redis.

Credit customers are replayed onto fresh topics (events and outcomes, as ``crmrisk replay``
does); ``crmrisk worker train``'s loop reads them, refreshes a deliberately weak champion and
promotes the result. A challenger trained from scratch on shuffled labels is then rejected with
its reason in the registry, and the pointer stays where it was.
"""

import random
import time
from dataclasses import replace

import pytest
import torch
from kafka import KafkaConsumer, KafkaProducer

from crmrisk import model
from crmrisk.commands.trainer import build_trainer_loop
from crmrisk.lifecycle import ModelPointer
from crmrisk.lifecycle.announcements import parse_model_update
from crmrisk.lifecycle.promoter import ModelPromoter
from crmrisk.lifecycle.registry import ModelRegistry
from crmrisk.settings import Settings
from crmrisk.training.data import Arrays
from crmrisk.training.datasets import fit_encoder, to_arrays
from crmrisk.training.datasets.feed import dataset_events, dataset_outcomes
from crmrisk.training.fit import FitConfig, fit

pytestmark = pytest.mark.integration

SMALL = {
    "hidden": 16,
    "channels": 16,
    "summary_dim": 16,
    "d_k": 16,
    "profile_hidden": 16,
    "head_hidden": 16,
}


@pytest.fixture
def world(tmp_path, settings, new_topic, redis_client, redis_prefix, credit_dataset):
    torch.set_num_threads(1)
    topics = {
        name: new_topic(partitions=2, prefix=f"it-train-{name}")
        for name in ("events", "outcomes", "scores", "model_updates")
    }
    s = Settings(
        kafka={"bootstrap_servers": settings.kafka.bootstrap_servers, "topics": topics},
        redis={"url": settings.redis.url, "key_prefix": redis_prefix.rstrip(":"), "window": 32},
        model={"dir": tmp_path / "models"},
        training={
            "retrain_every_labels": 2000,
            "retrain_every_s": 3600,
            "min_new_labels": 500,
            "holdout_fraction": 0.25,
            "min_holdout": 300,
            "fine_tune_epochs": 3,
            "fine_tune_learning_rate": 2e-3,
            "batch_size": 128,
            "replay_sample": 500,
            "promotion_tolerance": 0.005,
            "calibration_tolerance": 0.02,
            "drift_min_values": 200,
        },
    )
    splits = credit_dataset.splits()
    encoder = fit_encoder(credit_dataset.spec, splits["train"])
    # A weak champion: one epoch on 300 training customers.
    arrays = to_arrays(splits["train"][:400], encoder, 32)
    data = Arrays(
        arrays.events, arrays.mask, arrays.profile, arrays.label, customer_ids=arrays.customer_ids
    )
    network = model.build(
        model.DEFAULT_VARIANT, encoder.event_dim, encoder.profile_dim, (), seed=0, **SMALL
    )
    fit(
        network,
        data.take(list(range(300))),
        data.take(list(range(300, 400))),
        FitConfig(epochs=1, batch_size=64, learning_rate=1e-3, patience=1, seed=0),
    )
    registry = ModelRegistry(s.model.dir)
    v1 = registry.publish("credit", network, {"encoder": encoder.to_dict()})
    pointer = ModelPointer(redis_client, s.redis.key_prefix, 50, s.model.dir / "live")
    producer = KafkaProducer(
        bootstrap_servers=s.kafka.bootstrap_servers.split(","), acks="all", linger_ms=20
    )
    promoter = ModelPromoter(registry, pointer, producer, topics["model_updates"])
    promoter.promote("credit", v1.version, "initial", expected=None)
    customers = splits["val"] + splits["test"]
    random.Random(0).shuffle(customers)
    yield s, registry, pointer, promoter, producer, customers
    producer.close()


def _replay(producer, s: Settings, records) -> None:
    for event in dataset_events(records, "credit"):
        producer.send(s.kafka.topics.events, key=event.key, value=event.to_bytes())
    producer.flush()
    for outcome in dataset_outcomes(records, "credit"):
        producer.send(s.kafka.topics.outcomes, key=outcome.key, value=outcome.to_bytes())
    producer.flush()


def _poll_until(loop, labels: int, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while loop.trainer._fresh_labels < labels or not loop.caught_up:
        assert time.monotonic() < deadline, "the trainer did not read the replay in time"
        loop.poll(timeout_ms=200)


def test_replayed_domain__promotes_a_refresh_and_rejects_a_shuffled_challenger(world):
    s, registry, pointer, promoter, producer, customers = world
    _replay(producer, s, customers[:3000])
    loop = build_trainer_loop(s, "credit", promoter, pointer)
    try:
        deadline, report = time.monotonic() + 300, None
        while report is None:
            assert time.monotonic() < deadline, "no refresh within 300 s"
            report = loop.step(timeout_ms=200)
        assert report.trigger.startswith("labels: 3000 new"), report.trigger
        assert report.build["built"] == 3000
        assert report.decision.promote, report.decision.reason
        assert report.version == "v0002" and pointer.current("credit") == "v0002"
        promoted = registry.get("credit", "v0002")
        assert promoted.parent == "v0001" and promoted.decision["promoted"] is True
        assert promoted.metrics["holdout_auc"] >= promoted.metrics["champion_holdout_auc"] - 0.005
        assert promoted.data_window["outcome_offsets"]  # where a restarted trainer resumes
        assert set(loop.drift.references) >= {"score"}  # refitted on the promotion

        # Second batch: a challenger trained from scratch on shuffled labels.
        _replay(producer, s, customers[3000:4500])
        _poll_until(loop, 1500)
        rng = random.Random(1)

        def shuffle(examples):
            labels = [x.label for x in examples]
            rng.shuffle(labels)
            return [replace(x, label=y) for x, y in zip(examples, labels, strict=True)]

        # Feature drift is measured on the events read since the promotion (same customers'
        # population, so the index is finite and small; the gauges carry it).
        psi = loop.drift.psi()
        watched = [name for name in psi if name.startswith("event:")]
        assert watched and all(0 <= psi[name] < 10 for name in watched), psi

        canary = loop.trainer.refresh("canary: shuffled labels", shuffle, from_scratch=True)
        assert not canary.decision.promote
        assert canary.decision.reason.startswith("rejected: AUC"), canary.decision.reason
        assert canary.challenger.auc < canary.champion.auc - 0.005
        rejected = registry.get("credit", canary.version)
        assert rejected.decision["promoted"] is False
        assert rejected.decision["reason"] == canary.decision.reason
        assert rejected.parent == "v0002"
        assert pointer.current("credit") == "v0002"
        assert [c.version for c in pointer.history("credit")] == ["v0002", "v0001"]
    finally:
        loop.close()

    # A restarted trainer resumes: every label so far is in a version's data window already.
    restarted = build_trainer_loop(s, "credit", promoter, pointer)
    try:
        _poll_until(restarted, 0)
        while restarted.poll(timeout_ms=500):
            pass
        assert restarted.trainer._fresh_labels == 0
        assert len(restarted.trainer._trained_pending) == 4500
        assert restarted.trainer.due() is None
    finally:
        restarted.close()

    consumer = KafkaConsumer(
        s.kafka.topics.model_updates,
        bootstrap_servers=s.kafka.bootstrap_servers.split(","),
        auto_offset_reset="earliest",
        consumer_timeout_ms=3000,
    )
    versions = [parse_model_update(r.value).version for r in consumer]
    consumer.close()
    assert sorted(versions) == ["v0001", "v0002"]
