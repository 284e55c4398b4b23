"""Is a service answering? Real protocol requests, not just an open port."""

from __future__ import annotations

import contextlib
import logging
import random
import socket
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["free_port_block", "kafka_broker_count", "redis_answers"]


def free_port_block(
    size: int, low: int = 20000, high: int = 32000, offsets: Sequence[int] = (0,)
) -> int:
    """The first of ``size`` consecutive free loopback ports in [low, high).

    Below the kernel's ephemeral range (32768 and up): a port taken from there by bind(0) can be
    handed to some client connection before the server binds it (a 3-node KRaft cluster then
    never forms). ``offsets``: other ports that must be free too, e.g. 10000 for a Redis
    Cluster's bus port (``port + 10000``, which must stay <= 65535).
    """
    rng = random.Random()
    for _ in range(500):
        base = rng.randrange(low, high - size)
        if all(_port_free(base + i + off) for i in range(size) for off in offsets):
            return base
    raise RuntimeError(f"no block of {size} free ports in [{low}, {high})")


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def kafka_broker_count(
    bootstrap_servers: str, timeout_s: float = 3.0, client: Mapping[str, Any] | None = None
) -> int | None:
    """Brokers listed in a metadata answer from ``bootstrap_servers``, or None if none answers.

    ``client``: kafka-python security options (``KafkaCluster.client_options``, or
    ``KafkaSettings.client_config()`` without the servers) for a secured broker; a secured
    broker asked without them, or a plain one asked with them, answers None.
    """
    from kafka import KafkaAdminClient  # deferred: importing deploy must stay cheap
    from kafka.errors import KafkaError

    addresses = bootstrap_servers.split(",")
    if not any(_accepts(address) for address in addresses):
        return None  # nothing listens: skip the client's bootstrap wait
    timeout_ms = int(timeout_s * 1000)
    # A refused connection is the expected answer while a broker starts; keep it out of the logs.
    quiet = logging.getLogger("kafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    admin = None
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=addresses,
            client_id="crmrisk-probe",
            request_timeout_ms=timeout_ms,
            bootstrap_timeout_ms=timeout_ms,
            reconnect_backoff_max_ms=200,
            **(client or {}),
        )
        brokers = admin.describe_cluster()["brokers"]
        return sum(1 for broker in brokers if not broker.get("is_fenced"))
    except (KafkaError, OSError, ValueError):
        return None
    finally:
        if admin is not None:
            with contextlib.suppress(Exception):
                admin.close()
        quiet.setLevel(level)


def _accepts(address: str) -> bool:
    host, _, port = address.strip().rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=0.5):
            return True
    except (OSError, ValueError):
        return False


def redis_answers(url: str, timeout_s: float = 1.0, **options: Any) -> bool:
    """True when the Redis at ``url`` answers PING; ``options``: redis-py keyword arguments
    such as ``username``, ``password`` and ``ssl_ca_certs`` for a secured server."""
    import redis  # deferred like kafka above

    timeouts = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s}
    client = redis.Redis.from_url(url, **(options | timeouts))
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()
