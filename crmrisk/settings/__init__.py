"""All configuration in one frozen object, read from the environment at the entry points only.

Environment variables use the prefix ``RISK_`` and ``__`` between section and field, e.g.
``RISK_REDIS__URL`` or ``RISK_KAFKA__BOOTSTRAP_SERVERS``. The two endpoints most people set also
answer to their conventional names, ``KAFKA_BOOTSTRAP_SERVERS`` and ``REDIS_URL`` (the prefixed
form wins when both are set). Defaults match ``docker-compose.yml`` and the local launcher.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from crmrisk.settings.kafka import KafkaSettings, TopicSettings
from crmrisk.settings.redis import RedisSettings
from crmrisk.settings.scoring import ModelSettings, ScoringSettings
from crmrisk.settings.services import DashboardSettings, ServicesSettings
from crmrisk.settings.training import TrainingSettings

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
