"""Clients built from settings: Redis, the live-model pointer, and quiet Kafka loggers."""

from __future__ import annotations

import logging
from pathlib import Path

import redis

from crmrisk.lifecycle import ModelPointer
from crmrisk.settings import Settings

__all__ = ["model_pointer", "quiet_kafka_clients", "redis_client"]


def quiet_kafka_clients() -> None:
    """kafka-python and aiokafka log every connection at INFO; keep the CLI readable."""
    for name in ("kafka", "aiokafka"):
        logging.getLogger(name).setLevel(logging.WARNING)


def redis_client(settings: Settings) -> redis.Redis:
    """A client for ``settings.redis``: redis-py's cluster client when ``redis.cluster`` is set
    (it learns every node from the one in the URL and follows failovers)."""
    r = settings.redis
    if r.cluster:
        from redis.cluster import RedisCluster

        return RedisCluster.from_url(r.url, **r.client_kwargs())  # type: ignore[return-value]
    return redis.Redis.from_url(r.url, **r.client_kwargs())


def model_pointer(settings: Settings, client: redis.Redis | None = None) -> ModelPointer:
    """The live-model pointer: journal beside the registry (``<model.dir>/live``), Redis copy."""
    return ModelPointer(
        client or redis_client(settings),
        settings.redis.key_prefix,
        settings.training.pointer_history,
        Path(settings.model.dir) / "live",
    )
