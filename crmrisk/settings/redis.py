"""The Redis connection that holds the windows (``RISK_REDIS__...``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, SecretStr, model_validator

from crmrisk.settings.sections import FROZEN

__all__ = ["RedisSettings"]


class RedisSettings(BaseModel):
    model_config = FROZEN

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
