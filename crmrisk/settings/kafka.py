"""The broker connection and the project's topics (``RISK_KAFKA__...``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr

from crmrisk.settings.sections import FROZEN

__all__ = ["KafkaSettings", "TopicSettings"]


class TopicSettings(BaseModel):
    model_config = FROZEN

    events: str = Field("crm.events", description="Inbound customer events, keyed by customer id.")
    dead_letters: str = Field("crm.events.dlq", description="Rejected input with a reason.")
    outcomes: str = Field("crm.outcomes", description="Labelled outcomes for the trainer.")
    scores: str = Field("risk.scores", description="One RiskScore per scored event.")
    alerts: str = Field("risk.alerts", description="RiskAlerts fired by the alert policy.")
    shadow_scores: str = Field(
        "risk.scores.shadow",
        description="ShadowScores: a shadow or canary challenger's scores beside the champion's.",
    )
    model_updates: str = Field("risk.model-updates", description="Model version changes.")
    score_requests: str = Field(
        "risk.score-requests",
        description="Ingest -> inference handoff when the workers run apart (--handoff topic).",
    )
    partitions: int = Field(4, ge=1, description="Partitions for topics the project creates.")
    replication: int = Field(1, ge=1, description="Replication factor for created topics.")

    @classmethod
    def roles(cls) -> tuple[str, ...]:
        """Every topic's role (its field name), in declaration order: the one list of topics
        that ``crmrisk topics``, the demo and the tests create."""
        return tuple(name for name, f in cls.model_fields.items() if f.annotation is str)

    def by_role(self) -> dict[str, str]:
        """Role -> topic name, for every project topic (``roles``)."""
        return {role: getattr(self, role) for role in self.roles()}


class KafkaSettings(BaseModel):
    model_config = FROZEN

    bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Comma-separated host:port list of Kafka brokers."
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security protocol."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism when security_protocol uses SASL."
    )
    sasl_username: str | None = Field(None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(None, description="SASL password.")
    ssl_cafile: Path | None = Field(None, description="CA bundle used to verify the brokers.")
    ssl_certfile: Path | None = Field(None, description="Client certificate (mutual TLS).")
    ssl_keyfile: Path | None = Field(None, description="Client private key (mutual TLS).")
    client_id: str = Field("crmrisk", description="Client id prefix reported to the brokers.")
    group_id: str = Field("crmrisk", description="Consumer group prefix for the workers.")
    max_message_bytes: int = Field(
        64 * 1024, ge=1024, description="Inbound events larger than this go to the DLQ."
    )
    session_timeout_ms: int = Field(
        10_000,
        ge=1000,
        description="How long a worker may go silent before its consumer group gives its "
        "partitions to the others (the broker's group.min/max.session.timeout.ms bound it).",
    )
    max_future_s: float | None = Field(
        86_400.0,
        ge=0,
        description="Events dated more than this many seconds after the clock go to the DLQ "
        "as future_event (unset: no limit).",
    )
    producer: Literal["confluent", "aiokafka"] = Field(
        "confluent",
        description="The workers' producer client: confluent-kafka (librdkafka; about a third "
        "of aiokafka's CPU per message, benchmarks/kafka_clients.py) or aiokafka.",
    )
    topics: TopicSettings = Field(default_factory=TopicSettings)

    def client_config(self) -> dict[str, Any]:
        """Connection options shared by kafka-python and aiokafka clients."""
        config: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers.split(","),
            "security_protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            config["sasl_mechanism"] = self.sasl_mechanism
            config["sasl_plain_username"] = self.sasl_username
            config["sasl_plain_password"] = (
                self.sasl_password.get_secret_value() if self.sasl_password else None
            )
        if self.ssl_cafile:
            config["ssl_cafile"] = str(self.ssl_cafile)
        if self.ssl_certfile:
            config["ssl_certfile"] = str(self.ssl_certfile)
        if self.ssl_keyfile:
            config["ssl_keyfile"] = str(self.ssl_keyfile)
        return config
