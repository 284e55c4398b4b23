"""A reload during a live replay: nothing lost, nothing scored twice, every score's version right.

The worker is ``crmrisk worker ingest --live`` (``run_worker`` with ``follow_pointer``'s
watcher, inline handoff). v0002 is promoted with ``ModelPromoter`` (pointer + announcement)
while events are still being produced, at a steady rate, so the switch lands mid-stream. Every
scored event must appear exactly once on ``risk.scores``; per partition the versions must
switch once, v0001 then v0002; and each score must equal the offline score of the version it
names, so the label cannot lie.
"""

import time
from collections import Counter, defaultdict

import numpy as np
import pytest
import torch
from kafka import KafkaProducer

from crmrisk import lifecycle, model
from crmrisk.lifecycle import ModelPointer
from crmrisk.lifecycle.promoter import ModelPromoter
from crmrisk.lifecycle.registry import ModelRegistry
from crmrisk.settings import Settings
from crmrisk.stream.events import RiskScore
from crmrisk.training.datasets.feed import dataset_events
from crmrisk.wiring.models import follow_pointer

from .conftest import WorkerThread, offline_scores, read_topic

pytestmark = pytest.mark.integration

CUSTOMERS = 700  # x (6 statements + 1 profile) = 4,900 events, 4,200 scored
RATE = 1500.0  # events/s: the replay lasts ~3 s; the promotion lands ~1 s in


def test_reload_during_replay__loses_nothing_and_scores_nothing_twice(
    tmp_path, stream_settings, new_topic, credit_dataset, credit_checkpoint, redis_client
):
    torch.set_num_threads(1)
    updates = new_topic(prefix="it-model-updates")
    settings = Settings(
        kafka={
            **stream_settings.kafka.model_dump(),
            "topics": {**stream_settings.kafka.topics.model_dump(), "model_updates": updates},
        },
        redis=stream_settings.redis.model_dump(),
        scoring=stream_settings.scoring.model_dump(),
        model={"dir": str(tmp_path / "models")},
    )
    k = settings.kafka
    registry = ModelRegistry(settings.model.dir)
    v1 = registry.import_checkpoint("credit", credit_checkpoint)
    network, manifest = lifecycle.load_checkpoint(credit_checkpoint)
    other = model.build(
        manifest["variant"], network.config.event_dim, network.config.profile_dim, (), seed=1
    )
    v2 = registry.publish("credit", other, {"encoder": manifest["encoder"]}, parent=v1.version)
    pointer = ModelPointer(redis_client, settings.redis.key_prefix, 20, settings.model.dir / "live")
    producer = KafkaProducer(**k.client_config(), acks="all", linger_ms=5)
    promoter = ModelPromoter(registry, pointer, producer, updates)
    promoter.promote("credit", v1.version, "initial", expected=None)

    records = (credit_dataset.val + credit_dataset.test)[:CUSTOMERS]
    events = dataset_events(records, "credit")
    scored_ids = [e.event_id for e in events if e.kind != "profile"]

    watcher, models = follow_pointer(settings, ["credit"])
    assert models["credit"].version == "v0001"
    promoted_at = None
    try:
        with WorkerThread(settings, models, watcher=watcher) as worker:
            worker.owning()  # consuming before the replay, so v0001 scores its first part
            time.sleep(1.0)  # the watcher's consumer is positioned before the announcement
            started = time.monotonic()
            for i, event in enumerate(events):
                producer.send(k.topics.events, key=event.key, value=event.to_bytes())
                if i % 100 == 0:
                    ahead = i / RATE - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)
                if promoted_at is None and i >= len(events) * 0.35:
                    promoter.promote("credit", v2.version, "promoted mid-replay")
                    promoted_at = i
            producer.flush()
            records_out = read_topic(
                k.bootstrap_servers,
                k.topics.scores,
                until=lambda got: len(got) >= len(scored_ids),
                timeout_s=180,
            )
    finally:
        watcher.close()
        producer.close()

    scores = [(r.partition, RiskScore.model_validate_json(r.value)) for r in records_out]
    counts = Counter(s.event_id for _, s in scores)
    assert set(counts) == set(scored_ids), "an event was never scored"
    assert max(counts.values()) == 1, "an event was scored twice"

    versions = Counter(s.model_version for _, s in scores)
    assert set(versions) == {"v0001", "v0002"}, versions
    by_partition = defaultdict(list)
    for partition, s in scores:
        by_partition[partition].append(s.model_version)
    for partition, seq in by_partition.items():
        switch = seq.index("v0002") if "v0002" in seq else len(seq)
        assert set(seq[:switch]) <= {"v0001"} and set(seq[switch:]) <= {"v0002"}, partition

    offline = {"v0001": offline_scores(v1.path, events), "v0002": offline_scores(v2.path, events)}
    diffs = np.array([abs(s.probability - offline[s.model_version][s.event_id]) for _, s in scores])
    assert diffs.max() <= 1e-5, f"a score does not match the version it names: {diffs.max():.2e}"
