"""A spec domain end to end: an order log unlike the vendored one -> train -> replay -> serve ->
refresh, against the real broker and Redis.

The log (``training/datasets/synthetic_log.py``) has other column names (``client_ref``,
``placed_at``, ``order_ref``), other cutoffs (2023-05-01, 2023-07-01; test 2023-09-15) and
another label rule (net spend under 25 in the next 60 days). ``crmrisk train --spec`` trains
it, ``crmrisk replay --spec`` publishes its test customers, an ingest worker scores every event
(equal to the checkpoint offline), and the trainer refreshes the live model from the outcomes
of the training cutoffs.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from kafka import KafkaProducer
from typer.testing import CliRunner

from crmrisk.cli import app
from crmrisk.commands.trainer import build_trainer_loop
from crmrisk.lifecycle import ModelPointer
from crmrisk.lifecycle.promoter import ModelPromoter
from crmrisk.lifecycle.registry import ModelRegistry
from crmrisk.settings import Settings
from crmrisk.stream.events import RiskScore
from crmrisk.training.datasets import load_domain
from crmrisk.training.datasets.feed import dataset_events, dataset_outcomes
from crmrisk.training.datasets.synthetic_log import SPEC, order_log
from crmrisk.wiring.models import load_models

from .conftest import WorkerThread, offline_scores, read_topic, settings_env

pytestmark = pytest.mark.integration

DOMAIN = SPEC["domain"]
TEST_CUSTOMERS = 120


def test_spec_domain__trains_replays_serves_and_refreshes(tmp_path, stream_settings, redis_client):
    torch.set_num_threads(1)
    order_log(300, seed=11).to_csv(tmp_path / "orders.csv", index=False)
    spec_path = tmp_path / "orders.yaml"
    spec_path.write_text(yaml.safe_dump(SPEC))
    env = settings_env(stream_settings) | {"RISK_TRAINING__DATA_DIR": str(tmp_path)}
    runner = CliRunner()

    # Train: the CLI, small settings.
    models = tmp_path / "models"
    trained = runner.invoke(
        app,
        [
            *("train", "--spec", str(spec_path), "--epochs", "2", "--max-rows", "300"),
            *("--out", str(models), "--threads", "1"),
        ],
        env=env,
    )
    assert trained.exit_code == 0, trained.output
    assert f"published {DOMAIN} v0001" in trained.output
    checkpoint = models / "versions" / DOMAIN / "v0001"

    # Replay the test customers with the CLI.
    replayed = runner.invoke(
        app,
        [
            *("replay", "--spec", str(spec_path), "--split", "test", "--rate", "0"),
            *("--limit", str(TEST_CUSTOMERS)),
        ],
        env=env,
    )
    assert replayed.exit_code == 0, replayed.output
    dataset = load_domain("generic", tmp_path, 0, spec=SPEC)
    records = dataset.test[:TEST_CUSTOMERS]
    events = dataset_events(records, DOMAIN)
    scored_ids = [e.event_id for e in events if e.kind != "profile"]
    assert f"published {len(events):,} events of {len(records)}" in replayed.output

    # Serve: an ingest worker scores every event once, as the checkpoint does offline.
    served = load_models(stream_settings, [DOMAIN], {DOMAIN: checkpoint})
    with WorkerThread(stream_settings, served):
        out = read_topic(
            stream_settings.kafka.bootstrap_servers,
            stream_settings.kafka.topics.scores,
            until=lambda got: len(got) >= len(scored_ids),
            timeout_s=180,
        )
    scores = [RiskScore.model_validate_json(r.value) for r in out]
    counts = Counter(s.event_id for s in scores)
    assert set(counts) == set(scored_ids) and max(counts.values()) == 1
    assert {s.domain for s in scores} == {DOMAIN}
    offline = offline_scores(checkpoint, events)
    diffs = np.array([abs(s.probability - offline[s.event_id]) for s in scores])
    assert diffs.max() <= 1e-5, f"max |stream - offline| = {diffs.max():.2e}"

    # Refresh: the trainer reads the replayed events and the training cutoffs' outcomes.
    s = Settings(
        kafka=stream_settings.kafka.model_dump(),
        redis=stream_settings.redis.model_dump(),
        model={"dir": models},
        training={
            "retrain_every_labels": 300,
            "retrain_every_s": 3600,
            "min_new_labels": 200,
            "holdout_fraction": 0.25,
            "min_holdout": 60,
            "fine_tune_epochs": 2,
            "batch_size": 64,
            "replay_sample": 100,
            "drift_min_values": 50,
        },
    )
    registry = ModelRegistry(models)
    pointer = ModelPointer(redis_client, s.redis.key_prefix, 50, Path(models) / "live")
    producer = KafkaProducer(bootstrap_servers=s.kafka.bootstrap_servers.split(","), acks="all")
    promoter = ModelPromoter(registry, pointer, producer, s.kafka.topics.model_updates)
    promoter.promote(DOMAIN, "v0001", "trained", expected=None)
    tested = {r.customer_id for r in records}
    labelled = [r for r in dataset.train + dataset.val if r.customer_id in tested]
    for outcome in dataset_outcomes(labelled, DOMAIN):
        producer.send(s.kafka.topics.outcomes, key=outcome.key, value=outcome.to_bytes())
    producer.flush()
    loop = build_trainer_loop(s, DOMAIN, promoter, pointer)
    try:
        deadline, report = time.monotonic() + 300, None
        while report is None:
            assert time.monotonic() < deadline, "no refresh within 300 s"
            report = loop.step(timeout_ms=200)
    finally:
        loop.close()
        producer.close()
    # Labels: the training cutoffs' (sent here) and the test cutoff's (sent by replay).
    assert report.build["built"] == len(labelled) + len(records), report.build
    challenger = registry.get(DOMAIN, report.version)
    assert report.version == "v0002" and challenger.parent == "v0001"
    assert challenger.decision["promoted"] is report.decision.promote
    assert pointer.current(DOMAIN) == ("v0002" if report.decision.promote else "v0001")
