"""The dashboard and the local launcher (``RISK_DASHBOARD__...``, ``RISK_SERVICES__...``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, SecretStr

from crmrisk.settings.sections import FROZEN

__all__ = ["DashboardSettings", "ServicesSettings"]


class DashboardSettings(BaseModel):
    model_config = FROZEN

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
    model_config = FROZEN

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
