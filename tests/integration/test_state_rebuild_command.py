"""``crmrisk state rebuild`` on the real broker and Redis: lost state comes back as it was."""

from __future__ import annotations

import asyncio

import pytest
import redis
from typer.testing import CliRunner

from crmrisk.cli import app
from crmrisk.lifecycle.registry import ModelRegistry
from crmrisk.state import AlertStateStore, CustomerSequenceStore, PartitionFence
from crmrisk.stream.events import RiskScore
from crmrisk.training.datasets.feed import dataset_events, dataset_outcomes
from crmrisk.wiring.clients import model_pointer
from crmrisk.wiring.replay import replay

from .conftest import WorkerThread, read_topic, settings_env

pytestmark = pytest.mark.integration


def test_state_rebuild__restores_windows_and_alert_states_after_redis_lost_them(
    stream_settings, credit_dataset, credit_checkpoint, models_for, tmp_path
):
    settings = stream_settings.model_copy(
        update={"model": stream_settings.model.model_copy(update={"dir": tmp_path / "models"})}
    )
    version = ModelRegistry(settings.model.dir).import_checkpoint("credit", credit_checkpoint)
    model_pointer(settings).set("credit", version.version, "initial", expected=None)
    records = credit_dataset.test[:40]
    events = dataset_events(records, "credit")
    statements = [e for e in events if e.kind != "profile"]
    asyncio.run(replay(settings, events, dataset_outcomes(records, "credit"), None, False))
    with WorkerThread(settings, models_for(settings)):
        read_topic(
            settings.kafka.bootstrap_servers,
            settings.kafka.topics.scores,
            until=lambda got: len(got) >= len(statements),
            timeout_s=90,
        )  # scored, and (the step after) committed
        import time

        time.sleep(1.0)
    r = settings.redis
    client = redis.Redis.from_url(r.url)
    sequences = CustomerSequenceStore(client, r.key_prefix)
    alerts = AlertStateStore(client, r.key_prefix)
    customers = sorted({(e.customer_id, "credit") for e in events})
    before = [(w.event_ids, w.events.tolist()) for w in sequences.read_many(customers)]
    states_before = alerts.read_many(customers)
    assert any(not s.armed for s in states_before)  # some alerts fired: a state worth restoring

    for key in client.scan_iter(match=f"{r.key_prefix}:*"):
        client.delete(key)  # Redis lost everything (the pointer's journal did not)
    assert all(len(w) == 0 for w in sequences.read_many(customers))

    env = settings_env(settings) | {"RISK_MODEL__DIR": str(settings.model.dir)}
    result = CliRunner().invoke(app, ["state", "rebuild", "--domain", "credit"], env=env)
    assert result.exit_code == 0, result.output
    assert f"{len(events):,} events replayed" in result.output, result.output
    after = [(w.event_ids, w.events.tolist()) for w in sequences.read_many(customers)]
    assert after == before
    assert alerts.read_many(customers) == states_before
    fence = PartitionFence(client, r.key_prefix, r.ttl_s, 0, 1000)
    applied = fence.applied(settings.kafka.topics.events, [0, 1])
    assert sum(applied.values()) == len(events)  # each partition's state is whole again
    latest = client.get(f"{r.key_prefix}:score:credit:{{{customers[0][0]}}}")
    assert RiskScore.model_validate_json(latest).customer_id == customers[0][0]
