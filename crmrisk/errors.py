"""User errors of the CLI: one or two lines naming what to fix, exit code 2, no traceback.

Commands raise ``UserError``; ``describe`` turns the library's own user-facing failures (a bad
spec or data file, an unknown domain, a missing model, a service that does not answer) into one.
``crmrisk/cli.py`` applies it once, around every command; ``--verbose`` keeps the traceback.
``require_services`` asks Kafka and Redis once, briefly, before a command whose clients would
retry an absent service for ever (a worker, the trainer, ``replay``, ``train --promote``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crmrisk.settings import Settings

__all__ = ["EXIT_USER_ERROR", "UserError", "describe", "require_services"]

EXIT_USER_ERROR = 2
_START_SERVICES = "is it running? `crmrisk up` starts local Kafka and Redis"


class UserError(Exception):
    """Something the user can fix; printed as ``Error: <message>`` with exit code 2."""


def _service_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """(Redis errors, Kafka errors) meaning "the service did not answer"."""
    import aiokafka.errors as aio
    import kafka.errors as kafka
    import redis.exceptions as redis

    return (
        (redis.ConnectionError, redis.TimeoutError),
        (
            kafka.KafkaConnectionError,
            kafka.KafkaTimeoutError,
            aio.KafkaConnectionError,
        ),
    )


def describe(exc: BaseException) -> str | None:
    """The message for a failure the user can fix, or None for a bug (keep the traceback)."""
    from model.checkpoint import CheckpointError
    from state.errors import StateError
    from training.datasets.errors import DataError

    if isinstance(exc, UserError | DataError | CheckpointError):
        return str(exc)
    cause = exc.__cause__ or exc.__context__
    if isinstance(exc, StateError) and cause is not None:
        exc = cause
    redis_errors, kafka_errors = _service_errors()
    if isinstance(exc, redis_errors):
        return f"Redis did not answer ({exc}): {_START_SERVICES}, or set RISK_REDIS__URL"
    if isinstance(exc, kafka_errors):
        return (
            f"Kafka did not answer ({exc}): {_START_SERVICES}, or set RISK_KAFKA__BOOTSTRAP_SERVERS"
        )
    if isinstance(exc, FileNotFoundError):
        return f"file not found: {exc.filename}" if exc.filename else str(exc)
    if isinstance(exc, ConnectionRefusedError):
        return f"a service refused the connection ({exc}): {_START_SERVICES}"
    return None


def require_services(
    settings: Settings, kafka: bool = True, redis: bool = True, timeout_s: float = 5.0
) -> None:
    """Raise (a Kafka or Redis error ``describe`` names) unless each service answers within
    ``timeout_s``. Only at start: a running worker rides out an outage by retrying."""
    if kafka:
        from kafka import KafkaAdminClient

        # kafka-python logs every failed bootstrap attempt; the error says it in one line.
        kafka_log = logging.getLogger("kafka")
        level, _ = kafka_log.level, kafka_log.setLevel(logging.CRITICAL)
        try:
            KafkaAdminClient(
                **settings.kafka.client_config(), bootstrap_timeout_ms=int(timeout_s * 1000)
            ).close()
        finally:
            kafka_log.setLevel(level)
    if redis:
        import redis as redis_py

        # One node is enough to ask (a cluster node answers PING too); no retries.
        r = settings.redis
        kwargs = {**r.client_kwargs(), "socket_timeout": timeout_s}
        kwargs["socket_connect_timeout"] = timeout_s
        client = redis_py.Redis.from_url(r.url, retry=None, **kwargs)
        try:
            client.ping()
        finally:
            client.close()
