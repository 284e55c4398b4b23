"""``crmrisk alerts`` on the real broker: one line per alert, and --limit means that many."""

from datetime import UTC, datetime

import pytest
from kafka import KafkaProducer
from typer.testing import CliRunner

from crmrisk.cli import app
from crmrisk.stream.events import ReasonCode, RiskAlert

pytestmark = pytest.mark.integration


def _alert(customer: str, p: float) -> RiskAlert:
    return RiskAlert(
        alert_id=f"credit:{customer}:e", customer_id=customer, domain="credit",
        risk_type="default", probability=p, threshold=0.5, expected_loss=1234.0,
        model_version="v0001", event_id="e", raised_at=datetime(2024, 1, 1, 9, 30, tzinfo=UTC),
        reason="r",
        reasons=[
            ReasonCode(
                field="PAY_0", value="2 months late", source="profile", contribution=0.2,
                text="PAY_0 = 2 months late",
            )
        ],
    )  # fmt: skip


def test_alerts__from_the_beginning_one_line_each_up_to_the_limit(settings, new_topic):
    topic = new_topic(partitions=2, prefix="it-cli-alerts")
    producer = KafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers.split(","))
    for i in range(5):
        alert = _alert(f"c-{i}", 0.6 + i / 100)
        producer.send(topic, key=alert.key, value=alert.model_dump_json().encode())
    producer.flush(30)
    producer.close()
    env = {
        "RISK_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "RISK_KAFKA__TOPICS__ALERTS": topic,
    }
    runner = CliRunner()
    result = runner.invoke(app, ["alerts", "--from-beginning", "--limit", "3"], env=env)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("ALERT")]
    assert len(lines) == 3  # not every alert the first fetch returned
    assert all("credit/default customer c-" in line for line in lines)
    assert "PAY_0 = 2 months late" in result.output
    everything = runner.invoke(app, ["alerts", "--from-beginning", "--limit", "5"], env=env)
    shown = {line.split("customer ")[1].split()[0] for line in everything.output.splitlines()
             if line.startswith("ALERT")}  # fmt: skip
    assert shown == {f"c-{i}" for i in range(5)}
