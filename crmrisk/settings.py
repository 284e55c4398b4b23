"""All configuration in one frozen object, read from the environment at the entry points only.

Environment variables use the prefix ``RISK_`` and ``__`` between section and field, e.g.
``RISK_REDIS__URL`` or ``RISK_KAFKA__BOOTSTRAP_SERVERS``. The two endpoints most people set also
answer to their conventional names, ``KAFKA_BOOTSTRAP_SERVERS`` and ``REDIS_URL`` (the prefixed
form wins when both are set). Defaults match ``docker-compose.yml`` and the local launcher.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

__all__ = [
    "DashboardSettings",
    "KafkaSettings",
    "ModelSettings",
    "RedisSettings",
    "ScoringSettings",
    "ServicesSettings",
    "Settings",
    "TopicSettings",
    "TrainingSettings",
]

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class TopicSettings(BaseModel):
    model_config = _FROZEN

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
    model_config = _FROZEN

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


class RedisSettings(BaseModel):
    model_config = _FROZEN

    url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="Redis URL; use rediss:// for TLS, redis://:password@host/db for auth.",
    )
    password: SecretStr | None = Field(None, description="Password, if not in the URL.")
    username: str | None = Field(None, description="ACL user name, if not in the URL.")
    ssl_ca_certs: Path | None = Field(None, description="CA bundle for rediss:// connections.")
    key_prefix: str = Field("crmrisk", description="Prefix of every key the project writes.")
    window: int = Field(32, ge=1, description="Events kept per customer and domain (W).")
    ttl_s: int = Field(90 * 24 * 3600, ge=1, description="Inactive customers expire after this.")
    socket_timeout_s: float = Field(
        10.0, gt=0, description="A Redis reply slower than this counts as Redis being down."
    )
    connect_timeout_s: float = Field(2.0, gt=0, description="Timeout of a Redis connect.")
    cluster: bool = Field(
        False,
        description="Talk to a Redis Cluster (url names any node; keys carry hash tags).",
    )
    wait_replicas: int = Field(
        0,
        ge=0,
        description="After each batch, wait until this many replicas of each master hold it "
        "(WAIT), so a failover loses nothing; 1 with a replicated cluster, 0 = don't wait.",
    )
    wait_timeout_ms: int = Field(
        1000, ge=1, description="How long that wait may take before the batch is retried."
    )

    @model_validator(mode="after")
    def _ca_needs_tls(self) -> RedisSettings:
        if self.ssl_ca_certs and not self.url.startswith("rediss://"):
            raise ValueError("ssl_ca_certs is for TLS: the url must start with rediss://")
        return self

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``redis.Redis.from_url(self.url, **kwargs)``."""
        kwargs: dict[str, Any] = {
            "socket_timeout": self.socket_timeout_s,
            "socket_connect_timeout": self.connect_timeout_s,
        }
        if self.password:
            kwargs["password"] = self.password.get_secret_value()
        if self.username:
            kwargs["username"] = self.username
        if self.ssl_ca_certs:
            kwargs["ssl_ca_certs"] = str(self.ssl_ca_certs)
        return kwargs


class ScoringSettings(BaseModel):
    model_config = _FROZEN

    max_batch_size: int = Field(512, ge=1, description="Largest batch the inference worker runs.")
    max_delay_ms: float = Field(5.0, ge=0, description="Longest a request waits for a batch (ms).")
    device: str = Field("auto", description="'auto' (CUDA when present), 'cpu' or 'cuda[:N]'.")
    # fp32: on an H200 bf16 was slower at every batch size (issue 18); gpu_throughput.py
    # measures both per shape.
    precision: Literal["fp32", "bf16"] = Field(
        "fp32", description="Precision of the forward pass on CUDA (the CPU runs fp32)."
    )
    cuda_graphs: bool = Field(
        False,
        description="On CUDA, capture the scoring forward pass once per bucketed batch shape "
        "and replay it (off until benchmarks/gpu_check.sh has measured it on a GPU).",
    )
    alert_threshold: float = Field(0.5, ge=0, le=1, description="Probability that fires an alert.")
    alert_hysteresis: float = Field(
        0.05, ge=0, le=1, description="Score must fall this far below the threshold to re-arm."
    )
    alert_cooldown_s: float = Field(
        3600.0, ge=0, description="Minimum seconds between two alerts for one customer."
    )
    top_events: int = Field(3, ge=0, description="Events named in each score's explanation.")
    reasons: int = Field(
        5, ge=0, description="Reason codes (integrated gradients) per alert; 0 = off."
    )
    # 16 steps: on the credit model's benchmark alerts, sums within 0.0094 of score - baseline
    # and the same ordered top three as 256 steps for 98.6% of them (8 steps: 0.019 and 96.9%;
    # benchmarks/reasons.py, accuracy_vs_256_steps).
    reason_steps: int = Field(
        16, ge=1, description="Integration steps of the reason codes (more: smaller error)."
    )
    explain_in_process: bool = Field(
        True,
        description="Explain alerts (reason codes) in a process of the worker's own, so the "
        "scoring loop never waits for the interpreter lock they hold; false: in a thread.",
    )
    metrics_port: int = Field(9308, ge=0, description="Prometheus /metrics port (0 = off).")
    metrics_host: str = Field(
        "127.0.0.1",
        description="Address /metrics and /health listen on (workers and trainer); 0.0.0.0 in "
        "containers, which needs metrics_token.",
    )
    metrics_token: SecretStr | None = Field(
        None,
        min_length=16,
        description="Access token of /metrics and /health (workers and trainer): sent as "
        "'Authorization: Bearer <token>' or as the basic-auth password, else 401. Required to "
        "listen beyond loopback; the dashboard sends it to read a worker's /metrics.",
    )
    exposure_fields: dict[str, str] = Field(
        default_factory=lambda: {"credit": "LIMIT_BAL"},
        description="Per domain, the profile field holding the amount at risk (expected loss).",
    )
    risk_types: dict[str, str] = Field(
        default_factory=lambda: {
            "credit": "default",
            "telco": "churn",
            "bank": "non_conversion",
            "retail": "churn",
        },
        description="Per domain, what an alert warns of (default, churn, non_conversion, risk).",
    )
    outage_max_backoff_s: float = Field(
        5.0, gt=0, description="Longest wait between two retries while Redis or Kafka is down."
    )
    outage_give_up_s: float = Field(
        900.0,
        gt=0,
        description="A worker stops (for its supervisor to restart) after one outage this long.",
    )
    rebuild_state: bool = Field(
        True,
        description="Restore a partition's windows and alert states from its input topic when "
        "Redis lost them (or a tail of them), before scoring it.",
    )
    max_inflight: int = Field(
        4,
        ge=1,
        description="Batches scored and published whose alerts, state writes and commits are "
        "still pending (they overlap the next batches; more: bursts absorbed, more redelivered "
        "after a crash).",
    )
    max_customers: int = Field(
        200_000,
        ge=1,
        description="Customers per domain a worker holds in memory (least recently used ones "
        "beyond it are forgotten, Redis keeps them): about 2.7 KB each with 6 events of credit's "
        "width, 11 KB with full 32-event windows (benchmarks/results/state_memory.json).",
    )
    handoff: Literal["inline", "topic"] = Field(
        "inline",
        description="Ingest -> inference: in-process ('inline') or via the score-requests topic.",
    )
    field_policy: Literal["strict", "coerce"] = Field(
        "strict",
        description="A field value of the wrong type for its domain's model (text or true/false "
        "in a numeric field, e.g. bill_amt 'abc'): 'strict' makes the event a dead letter "
        "(invalid_field_value, naming the field, the value and the expected type); 'coerce' "
        "encodes the value as missing and counts it (crmrisk_coerced_fields_total{domain,field,"
        "to='missing'}). Either way, numeric text such as '12.5' is taken as its number and "
        "counted (to='number'), blank text as missing.",
    )
    field_policies: dict[str, Literal["strict", "coerce"]] = Field(
        default_factory=dict,
        description="Per domain, a field_policy overriding the one above (e.g. {'retail': "
        "'coerce'}).",
    )
    # Counted, not rejected, by default: the replayed datasets carry no field or kind their
    # models do not know, but a producer adding a field before the model is retrained to use it
    # is normal schema evolution (the trainer reads crm.events itself), and the encoder has an
    # unknown-kind slot so that a kind first seen while serving never fails.
    unknown_policy: Literal["count", "reject"] = Field(
        "count",
        description="Field names and event kinds a domain's model does not know: 'count' "
        "(crmrisk_unknown_fields_total / crmrisk_unknown_kinds_total per name, the first 100 "
        "names per domain, later ones as '_other'; the event is scored) or 'reject' (also dead "
        "letters: unknown_field, unknown_kind).",
    )


class ModelSettings(BaseModel):
    model_config = _FROZEN

    dir: Path = Field(Path("models"), description="Where trained models and the registry live.")
    variant: str = Field("qrcnn-lstm-cross", description="Architecture variant to train.")


class TrainingSettings(BaseModel):
    model_config = _FROZEN

    data_dir: Path = Field(Path("data"), description="Folder with the vendored datasets.")
    seed: int = Field(0, description="Seed for splits, initialisation and shuffling.")
    epochs: int = Field(40, ge=1, description="Upper bound on epochs (early stopping ends sooner).")
    batch_size: int = Field(256, ge=1, description="Training mini-batch size.")
    device: str = Field(
        "auto",
        description="Where `crmrisk train` and `crmrisk worker train` train: 'auto' (CUDA when "
        "present), 'cpu' or 'cuda[:N]'.",
    )
    learning_rate: float = Field(3e-3, gt=0, description="AdamW learning rate.")
    patience: int = Field(5, ge=1, description="Epochs without validation gain before stopping.")
    results_dir: Path = Field(
        Path("benchmarks/results"), description="Where benchmark JSON, plots and reports go."
    )
    # Incremental refresh (`crmrisk worker train`), model registry and drift.
    retrain_every_s: float = Field(
        900.0, gt=0, description="Refresh at least this often when new labels exist (s)."
    )
    retrain_every_labels: int = Field(
        5000, ge=1, description="Refresh as soon as this many new labels have arrived."
    )
    min_new_labels: int = Field(
        200, ge=1, description="Never refresh on fewer new labels than this (any trigger)."
    )
    replay_sample: int = Field(
        5000, ge=0, description="Older examples mixed into each refresh so it does not forget."
    )
    replay_pool: int = Field(
        50_000, ge=0, description="Older examples remembered (uniform reservoir) for replay."
    )
    holdout_fraction: float = Field(
        0.2, gt=0, lt=1, description="Share of customers never trained on: the held-out slice."
    )
    holdout_size: int = Field(
        5000, ge=1, description="Most recent held-out examples champion and challenger face."
    )
    min_holdout: int = Field(
        200, ge=1, description="No promotion on a held-out slice smaller than this."
    )
    promotion_tolerance: float = Field(
        0.005, ge=0, description="Promote unless held-out AUC drops by more than this."
    )
    calibration_tolerance: float = Field(
        0.02, ge=0, description="Promote unless calibration error rises by more than this."
    )
    shadow_first: bool = Field(
        False,
        description="A refresh that passes the gate starts a shadow trial instead of going live; "
        "`crmrisk models guard --promote-on-pass` makes it live once it passes on live traffic.",
    )
    fine_tune_epochs: int = Field(4, ge=1, description="Epoch bound of one refresh.")
    fine_tune_learning_rate: float = Field(
        5e-4, gt=0, description="AdamW learning rate when fine-tuning from the live weights."
    )
    history_limit: int = Field(
        128, ge=1, description="Events per customer the trainer keeps for point-in-time rebuilds."
    )
    drift_psi_threshold: float = Field(
        0.25, gt=0, description="PSI above which a score or feature counts as drifted."
    )
    drift_recent: int = Field(5000, ge=1, description="Latest values per quantity PSI compares.")
    drift_min_values: int = Field(
        500, ge=1, description="No PSI (and no drift) on fewer recent values than this."
    )
    drift_features: int = Field(
        8, ge=0, description="Event features watched for drift (most variable in training)."
    )
    drift_retrain: bool = Field(True, description="Drift above the threshold refreshes early.")
    pointer_history: int = Field(
        200, ge=1, description="Model pointer changes kept per domain in Redis."
    )
    reload_check_every_s: float = Field(
        5.0, gt=0, description="Inference workers re-read the model pointer at least this often."
    )
    metrics_port: int = Field(
        9309, ge=0, description="Prometheus /metrics port of `crmrisk worker train` (0 = off)."
    )


class DashboardSettings(BaseModel):
    model_config = _FROZEN

    token: SecretStr | None = Field(
        None,
        min_length=16,
        description="Access token of the dashboard (`crmrisk dashboard`, `crmrisk demo`): a "
        "browser asks for it as the password (any user name), API clients send "
        "'Authorization: Bearer <token>'; else 401. Required to listen beyond loopback.",
    )
    performance_chunk_hours: float = Field(
        24.0,
        gt=0,
        description="Chunk of score event time of the performance panels (estimated vs "
        "realized AUC, champion vs challenger), in hours (as `crmrisk models performance`).",
    )
    performance_chunks: int = Field(
        30, ge=1, description="Chunks the performance panels keep per domain (the newest)."
    )
    performance_chunk_scores: int = Field(
        5000, ge=1, description="Scores the performance panels keep per domain and chunk."
    )
    performance_outcomes: int = Field(
        50_000, ge=1, description="Outcomes the performance panels keep per domain (newest)."
    )
    performance_draws: int = Field(
        200, ge=1, description="Sampled label vectors behind the estimated AUC's band."
    )
    performance_every_s: float = Field(
        30.0,
        gt=0,
        description="The performance panels and series are recomputed at most this often (s): "
        "a report over full bounds (30 chunks of 5000 scores, 50,000 outcomes) takes ~2.5 s.",
    )
    shadow_scatter: int = Field(
        500, ge=1, description="Champion vs challenger probability pairs kept for the scatter."
    )


class ServicesSettings(BaseModel):
    model_config = _FROZEN

    home: Path = Field(
        Path("var"), description="Runtime folder of the local launcher (logs, data, pid files)."
    )
    cache_dir: Path = Field(
        Path.home() / ".cache" / "crmrisk",
        description="Where Kafka jars are resolved to (outside the repository).",
    )
    kafka_version: str = Field("4.1.2", description="Apache Kafka version run by the launcher.")
    kafka_heap: str = Field("-Xms256m -Xmx768m", description="JVM heap options for each broker.")
    kafka_port: int = Field(9092, ge=1, description="Client port of the single local broker.")
    kafka_controller_port: int = Field(
        9093, ge=1, description="KRaft controller port of the single local broker."
    )
    redis_port: int = Field(6379, ge=1, description="Port of the local redis-server.")
    cluster_port: int = Field(
        19092, ge=1, description="Client port of the first node of the local 3-broker cluster."
    )
    cluster_controller_port: int = Field(
        19192, ge=1, description="Controller port of the first node of the 3-broker cluster."
    )
    cluster_heap: str = Field(
        "-Xms128m -Xmx384m", description="JVM heap options for each node of the 3-broker cluster."
    )
    redis_cluster_port: int = Field(
        17000,
        ge=1,
        description="First of 6 ports of the local Redis Cluster (3 masters + 3 replicas).",
    )
    start_timeout_s: float = Field(
        120.0, gt=0, description="How long `crmrisk up` waits for a service to answer (s)."
    )


class _ConventionalNames(PydanticBaseSettingsSource):
    """Maps KAFKA_BOOTSTRAP_SERVERS and REDIS_URL onto their sections."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        if servers := os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
            found["kafka"] = {"bootstrap_servers": servers}
        if url := os.environ.get("REDIS_URL"):
            found["redis"] = {"url": url}
        return found


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RISK_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
        frozen=True,
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    scoring: ScoringSettings = Field(default_factory=ScoringSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)
    services: ServicesSettings = Field(default_factory=ServicesSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Earlier sources win; pydantic-settings merges nested sections across sources.
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            _ConventionalNames(settings_cls),
            file_secret_settings,
        )
