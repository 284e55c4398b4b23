"""``crmrisk models performance`` on the real broker: a table per chunk, realized where joined;
a missing topic is one clear line."""

from datetime import UTC, datetime, timedelta

import pytest
from kafka import KafkaProducer
from typer.testing import CliRunner

from crmrisk.cli import app
from crmrisk.stream.events import Outcome, RiskScore

pytestmark = pytest.mark.integration

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _score(i: int, day: int) -> RiskScore:
    t = T0 + timedelta(days=day, minutes=i)
    return RiskScore(
        customer_id=f"c{day}-{i}", domain="credit", event_id=f"e{day}-{i}", event_time=t,
        probability=0.8 if i % 2 else 0.2, model_version="v0001", scored_at=t, exposure=1000.0,
    )  # fmt: skip


def test_models_performance__estimate_per_chunk_realized_where_outcomes_joined(settings, new_topic):
    scores_topic = new_topic(partitions=2, prefix="it-cli-perf-scores")
    outcomes_topic = new_topic(partitions=1, prefix="it-cli-perf-outcomes")
    producer = KafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers.split(","))
    for day in (0, 1):
        for i in range(6):
            s = _score(i, day)
            producer.send(scores_topic, key=s.key, value=s.model_dump_json().encode())
    for i in range(6):  # outcomes for day 0 only; labels follow the scores
        o = Outcome(
            customer_id=f"c0-{i}", domain="credit", as_of=T0 + timedelta(hours=1),
            observed_at=T0 + timedelta(days=30), label=i % 2,
        )  # fmt: skip
        producer.send(outcomes_topic, key=o.key, value=o.model_dump_json().encode())
    producer.send(outcomes_topic, value=b"not json")
    producer.flush(30)
    producer.close()
    env = {
        "RISK_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "RISK_KAFKA__TOPICS__SCORES": scores_topic,
        "RISK_KAFKA__TOPICS__OUTCOMES": outcomes_topic,
        "COLUMNS": "200",
    }
    result = CliRunner().invoke(app, ["models", "performance", "--domain", "credit"], env=env)
    assert result.exit_code == 0, result.output
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in result.output.splitlines()
            if "v0001" in line]  # fmt: skip
    header = ["version", "chunk", "n", "est. AUC", "real AUC", "est. P/R", "real P/R", "labelled",
              "exp. loss", "real loss"]  # fmt: skip
    day0, day1 = (dict(zip(header, row, strict=True)) for row in rows)
    assert (day0["chunk"], day0["n"], day0["labelled"]) == ("2024-01-01 00:00", "6", "6")
    assert day0["real AUC"] == "1.000" and day0["real P/R"] == "1.000 / 1.000"
    assert day0["est. AUC"].startswith("0.8")  # expected AUC of {0.2, 0.8} x3: 0.84
    assert (day1["chunk"], day1["labelled"], day1["real AUC"]) == ("2024-01-02 00:00", "0", "-")
    # 3 x 0.8 x 1000 + 3 x 0.2 x 1000, band sqrt(6 x 0.16) x 1000; 3 defaults of 1000
    assert day0["exp. loss"] == "3,000 ± 980" and day0["real loss"] == "3,000"
    assert day1["real loss"] == "-"
    assert "skipped unreadable records: 0 scores, 1 outcomes" in result.output
    assert "no concept drift" in result.output
    later = CliRunner().invoke(
        app, ["models", "performance", "--since", "2024-01-02T00:00:00+00:00"], env=env
    )
    assert later.exit_code == 0, later.output
    assert "2024-01-02 00:00" in later.output and "2024-01-01 00:00" not in later.output


def test_models_performance__missing_topic_is_one_clear_line(settings):
    env = {
        "RISK_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "RISK_KAFKA__TOPICS__SCORES": "it-cli-perf-no-such-topic",
    }
    result = CliRunner().invoke(app, ["models", "performance"], env=env)
    assert result.exit_code == 2
    assert "topic it-cli-perf-no-such-topic does not exist" in result.output
    zero = CliRunner().invoke(app, ["models", "performance", "--chunk-hours", "0"], env=env)
    assert zero.exit_code == 2 and "--chunk-hours must be positive, got 0" in zero.output
