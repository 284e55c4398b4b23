"""``crmrisk models``: import, promote, list, roll back and history, on real Redis and Kafka."""

import pytest
from typer.testing import CliRunner

from crmrisk.cli import app
from crmrisk.lifecycle import ModelPointer, save_checkpoint
from crmrisk.lifecycle.registry import ModelRegistry
from tests.lifecycle.conftest import tiny_model as _model

pytestmark = pytest.mark.integration


@pytest.fixture
def env(tmp_path, settings, redis_prefix, new_topic):
    return {
        "RISK_MODEL__DIR": str(tmp_path / "models"),
        "RISK_REDIS__URL": settings.redis.url,
        "RISK_REDIS__KEY_PREFIX": redis_prefix.rstrip(":"),
        "RISK_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "RISK_KAFKA__TOPICS__MODEL_UPDATES": new_topic(prefix="it-cli-updates"),
    }


def test_models__import_promote_list_rollback(tmp_path, env, redis_client):
    runner = CliRunner()
    save_checkpoint(tmp_path / "trained", _model(0), {"encoder": {"domain": "credit"}})
    result = runner.invoke(
        app, ["models", "import", str(tmp_path / "trained"), "--promote"], env=env
    )
    assert result.exit_code == 0, result.output
    assert "imported" in result.output and "-> v0001" in result.output
    ModelRegistry(tmp_path / "models").publish("credit", _model(1), {"encoder": {}})

    result = runner.invoke(app, ["models", "promote", "v0002", "--reason", "better"], env=env)
    assert result.exit_code == 0, result.output
    pointer = ModelPointer(
        redis_client, env["RISK_REDIS__KEY_PREFIX"], 10, tmp_path / "models" / "live"
    )
    assert pointer.current("credit") == "v0002"

    for command in (["models", "--domain", "credit"], ["models", "list", "--domain", "credit"]):
        listing = runner.invoke(app, command, env=env, terminal_width=200)
        assert listing.exit_code == 0, listing.output
        lines = [line for line in listing.output.splitlines() if "v000" in line]
        assert len(lines) == 2 and "*" in lines[1] and "*" not in lines[0]

    result = runner.invoke(app, ["models", "rollback"], env=env)
    assert result.exit_code == 0, result.output
    assert pointer.current("credit") == "v0001"
    history = runner.invoke(app, ["models", "history"], env=env)
    assert [line.split()[-1] for line in history.output.splitlines()][:1] == ["v0002"]
    assert "rollback from v0002" in history.output


def test_models__promote_refuses_a_corrupted_version(tmp_path, env, redis_client):
    registry = ModelRegistry(tmp_path / "models")
    registry.publish("credit", _model(0), {"encoder": {}})
    bad = registry.publish("credit", _model(1), {"encoder": {}})
    (bad.path / "weights.safetensors").write_bytes(b"not the weights")
    result = CliRunner().invoke(app, ["models", "promote", "v0002"], env=env)
    assert result.exit_code != 0
    assert "does not match" in result.output
    assert (
        ModelPointer(
            redis_client, env["RISK_REDIS__KEY_PREFIX"], 10, tmp_path / "models" / "live"
        ).current("credit")
        is None
    )


def _trial_env(env, new_topic):
    return env | {
        "RISK_KAFKA__TOPICS__SHADOW_SCORES": new_topic(prefix="it-cli-shadow"),
        "RISK_KAFKA__TOPICS__SCORES": new_topic(prefix="it-cli-scores"),
        "RISK_KAFKA__TOPICS__OUTCOMES": new_topic(prefix="it-cli-outcomes"),
    }


def test_models__shadow_and_canary_start_show_and_end(tmp_path, env, redis_client, new_topic):
    env = _trial_env(env, new_topic)
    runner = CliRunner()
    registry = ModelRegistry(tmp_path / "models")
    for seed in range(3):
        registry.publish("credit", _model(seed), {"encoder": {"domain": "credit"}})
    assert runner.invoke(app, ["models", "promote", "v0001"], env=env).exit_code == 0
    pointer = ModelPointer(
        redis_client, env["RISK_REDIS__KEY_PREFIX"], 10, tmp_path / "models" / "live"
    )

    result = runner.invoke(app, ["models", "shadow", "v0002"], env=env)
    assert result.exit_code == 0, result.output
    assert "v0002 on trial as a shadow" in result.output
    assert pointer.trial("credit").mode == "shadow"
    result = runner.invoke(app, ["models", "canary", "v0003", "--percent", "10"], env=env)
    assert result.exit_code == 0, result.output
    trial = pointer.trial("credit")
    assert (trial.mode, trial.version, trial.percent) == ("canary", "v0003", 10.0)
    listing = runner.invoke(app, ["models", "list"], env=env, terminal_width=200)
    (line,) = [x for x in listing.output.splitlines() if "v0003" in x]
    assert "canary 10%" in line

    compared = runner.invoke(app, ["models", "compare"], env=env, terminal_width=200)
    assert compared.exit_code == 0, compared.output
    assert "verdict: wait" in compared.output  # nothing served yet

    result = runner.invoke(app, ["models", "end-trial", "--reason", "done"], env=env)
    assert result.exit_code == 0, result.output
    assert pointer.trial("credit") is None and pointer.current("credit") == "v0001"
    assert pointer.trials("credit")[-1]["end_reason"] == "done"


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["models", "shadow", "v0001"], "already live"),
        (["models", "shadow", "v0009"], "v0009 is not in the registry"),
        (["models", "shadow", "v0002"], "encodes events differently"),
        (["models", "canary", "v0003", "--percent", "100"], "percent must be in (0, 100)"),
        (["models", "compare"], "no trial running"),
        (["models", "end-trial"], "no trial running"),
    ],
)
def test_models__a_trial_refused_is_one_clear_line(tmp_path, env, new_topic, command, message):
    env = _trial_env(env, new_topic)
    registry = ModelRegistry(tmp_path / "models")
    registry.publish("credit", _model(0), {"encoder": {"domain": "credit"}})
    registry.publish("credit", _model(1), {"encoder": {"domain": "credit", "other": 1}})
    registry.publish("credit", _model(2), {"encoder": {"domain": "credit"}})
    assert CliRunner().invoke(app, ["models", "promote", "v0001"], env=env).exit_code == 0
    result = CliRunner().invoke(app, command, env=env, terminal_width=200)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
