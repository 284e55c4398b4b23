"""``crmrisk score CUSTOMER --explain`` on the real pipeline: the latest score with its reasons."""

from __future__ import annotations

import asyncio
import json

import pytest
from typer.testing import CliRunner

from crmrisk.cli import app
from crmrisk.lifecycle.registry import ModelRegistry
from crmrisk.model.features import FeatureEncoder
from crmrisk.training.datasets.feed import dataset_events, dataset_outcomes
from crmrisk.wiring.models import load_models
from crmrisk.wiring.replay import replay

from .conftest import WorkerThread, read_topic, settings_env

pytestmark = pytest.mark.integration


def test_score_explain__names_fields_values_and_events_of_that_customer(
    stream_settings, credit_dataset, credit_checkpoint, tmp_path
):
    settings = stream_settings.model_copy(
        update={"model": stream_settings.model.model_copy(update={"dir": tmp_path / "models"})}
    )
    entry = ModelRegistry(settings.model.dir).import_checkpoint("credit", credit_checkpoint)
    records = credit_dataset.test[:5]
    events = dataset_events(records, "credit")
    statements = [e for e in events if e.kind != "profile"]
    asyncio.run(replay(settings, events, dataset_outcomes(records, "credit"), None, False))
    with WorkerThread(settings, load_models(settings, ["credit"])):
        read_topic(
            settings.kafka.bootstrap_servers,
            settings.kafka.topics.scores,
            until=lambda got: len(got) >= len(statements),
            timeout_s=60,
        )
    customer = records[0].customer_id
    own = {e.event_id for e in events if e.customer_id == customer}
    env = settings_env(settings) | {"RISK_MODEL__DIR": str(settings.model.dir)}
    result = CliRunner().invoke(app, ["score", customer, "--explain", "--json"], env=env)
    assert result.exit_code == 0, result.output
    score = json.loads(result.output)
    assert score["customer_id"] == customer and score["model_version"] == entry.version
    reasons = score["reasons"]
    assert len(reasons) >= 3
    encoder = FeatureEncoder.from_dict(entry.manifest["encoder"])
    names = {f.name for f in encoder.spec.event_fields} | {
        f.name for f in encoder.spec.profile_fields
    }
    assert {r["field"] for r in reasons} <= names
    assert all(r["event_id"] in own for r in reasons if r["source"] == "event")
    sizes = [abs(r["contribution"]) for r in reasons]
    assert sizes == sorted(sizes, reverse=True)  # strongest first
    human = CliRunner().invoke(app, ["score", customer, "--explain"], env=env)
    assert human.exit_code == 0 and reasons[0]["field"] in human.output
