"""User errors of the CLI: one or two lines naming what to fix, exit code 2, no traceback.

Commands raise ``UserError``; ``describe`` turns the library's own user-facing failures (a bad
spec or data file, an unknown domain, a missing model, a service that does not answer) into one.
``crmrisk/cli.py`` applies it once, around every command; ``--verbose`` keeps the traceback.
``require_services`` asks Kafka and Redis once, briefly, before a command whose clients would
retry an absent service for ever (a worker, the trainer, ``replay``, ``train --promote``): a
broker or Redis that refuses the login, or whose certificate is not trusted, is named as such.
No message carries a password: settings errors name the field, never the value.
"""

from __future__ import annotations

import ssl
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crmrisk.settings import KafkaSettings, Settings

__all__ = ["EXIT_USER_ERROR", "UserError", "describe", "require_services"]

EXIT_USER_ERROR = 2
_START_SERVICES = "is it running? `crmrisk up` starts local Kafka and Redis"


class UserError(Exception):
    """Something the user can fix; printed as ``Error: <message>`` with exit code 2."""


def _redis_refusal(exc: BaseException) -> str | None:
    """The message for a Redis that refused the login or the TLS handshake, else None."""
    import redis.exceptions as redis

    if isinstance(exc, redis.AuthenticationError):
        return (
            f"Redis refused the login ({exc}): check RISK_REDIS__USERNAME and "
            "RISK_REDIS__PASSWORD (or the user and password in RISK_REDIS__URL)"
        )
    cause = exc.__cause__ or exc.__context__
    if isinstance(exc, redis.ConnectionError) and isinstance(cause, ssl.SSLCertVerificationError):
        return (
            f"Redis's TLS certificate is not trusted ({cause.verify_message}): set "
            "RISK_REDIS__SSL_CA_CERTS to the CA that signed it"
        )
    return None


def _settings_error(exc: BaseException) -> str | None:
    """Invalid settings: each field and what is wrong with it, never the value (a secret?)."""
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError) or exc.title != "Settings":
        return None
    problems = "; ".join(
        f"RISK_{'__'.join(str(part) for part in error['loc']).upper()}: {error['msg']}"
        for error in exc.errors(include_input=False, include_url=False)
    )
    return f"invalid settings (RISK_ environment or .env): {problems}"


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
    from crmrisk.lifecycle.checkpoint import CheckpointError
    from crmrisk.state.errors import StateError
    from crmrisk.stream.access import InsecureListenError
    from crmrisk.training.datasets.errors import DataError

    if isinstance(exc, UserError | DataError | CheckpointError):
        return str(exc)
    if isinstance(exc, InsecureListenError):
        return (
            f"{exc} (RISK_SCORING__METRICS_TOKEN for the workers' and the trainer's /metrics, "
            "RISK_DASHBOARD__TOKEN for the dashboard)"
        )
    cause = exc.__cause__ or exc.__context__
    if isinstance(exc, StateError) and cause is not None:
        exc = cause
    if message := _redis_refusal(exc) or _settings_error(exc):
        return message
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
        _require_kafka(settings.kafka, timeout_s)
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


def _require_kafka(kafka: KafkaSettings, timeout_s: float) -> None:
    """Ask for the cluster's metadata with librdkafka, which names why a connection failed
    (kafka-python and aiokafka only see the broker hang up): a refused login or an untrusted
    certificate ends the wait at once, with its reason."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient

    from crmrisk.stream.kafka_options import librdkafka_options

    # librdkafka's own (local) error codes start with "_": its public names, not private ones.
    login_refused = KafkaError._AUTHENTICATION  # noqa: SLF001
    tls_failed = KafkaError._SSL  # noqa: SLF001
    unreachable = KafkaError._TRANSPORT  # noqa: SLF001
    errors: list[KafkaError] = []
    admin = AdminClient(
        {
            **librdkafka_options(kafka.client_config()),
            "client.id": f"{kafka.client_id}-probe",
            "error_cb": errors.append,
            "log_level": 0,  # its reasons come through error_cb; keep stderr to our one line
        }
    )
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin.list_topics(timeout=max(0.1, min(1.0, deadline - time.monotonic())))
            return
        except KafkaException as exc:
            admin.poll(0)  # serves error_cb: why the connections failed
            reasons = {error.code(): _reason(error.str()) for error in errors}
            if login := reasons.get(login_refused):
                raise UserError(
                    f"Kafka refused the login of user {kafka.sasl_username!r} ({login}): check "
                    "RISK_KAFKA__SASL_USERNAME, RISK_KAFKA__SASL_PASSWORD and "
                    "RISK_KAFKA__SASL_MECHANISM"
                ) from None
            if tls := reasons.get(tls_failed):
                raise UserError(
                    f"Kafka's TLS handshake failed ({tls}): set RISK_KAFKA__SSL_CAFILE to the CA "
                    "that signed the broker's certificate"
                ) from None
            if time.monotonic() >= deadline:
                reason = reasons.get(unreachable) or _reason(exc.args[0].str())
                raise UserError(
                    f"Kafka did not answer ({reason}): {_START_SERVICES}, or set "
                    "RISK_KAFKA__BOOTSTRAP_SERVERS (and RISK_KAFKA__SECURITY_PROTOCOL)"
                ) from None


def _reason(text: str) -> str:
    """librdkafka's error text without the broker prefix, its hint and the state suffix."""
    text = text.split("/bootstrap: ", 1)[-1]
    return text.split(" (after ", 1)[0].split(", verify that ", 1)[0][:200]
