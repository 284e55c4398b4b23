"""``crmrisk worker train`` is mounted and refuses, clearly, to start without a live model."""

import pytest
from typer.testing import CliRunner

from crmrisk.cli import app

pytestmark = pytest.mark.integration


def test_worker_train__without_a_live_model_says_how_to_get_one(tmp_path, settings, redis_prefix):
    env = {
        "RISK_MODEL__DIR": str(tmp_path / "models"),
        "RISK_REDIS__URL": settings.redis.url,
        "RISK_REDIS__KEY_PREFIX": redis_prefix.rstrip(":"),
        "RISK_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
    }
    result = CliRunner().invoke(
        app, ["worker", "train", "--domain", "telco", "--metrics-port", "0"], env=env
    )
    assert result.exit_code == 2, result.output
    assert "no live model for telco" in result.output
    assert "crmrisk models import" in result.output
