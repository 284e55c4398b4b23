"""Connection options: ``KafkaSettings.client_config()`` as aiokafka and librdkafka take them.

One mapping per client library, so the consumer, the producers and the preflight check
(``crmrisk/errors.py``) connect the same way (TLS, SASL) whichever client they use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["aiokafka_options", "librdkafka_options"]

_SECURITY_KEYS = (
    "security_protocol",
    "sasl_mechanism",
    "sasl_plain_username",
    "sasl_plain_password",
)


def aiokafka_options(client: Mapping[str, Any]) -> dict[str, Any]:
    """``KafkaSettings.client_config()`` mapped onto aiokafka's keyword names."""
    options = {"bootstrap_servers": client["bootstrap_servers"]}
    options.update({k: client[k] for k in _SECURITY_KEYS if client.get(k) is not None})
    # aiokafka refuses SSL and SASL_SSL without a context; no CA file means the system's CAs.
    tls = str(client.get("security_protocol", "")).endswith("SSL")
    if tls or any(client.get(k) for k in ("ssl_cafile", "ssl_certfile", "ssl_keyfile")):
        from aiokafka.helpers import create_ssl_context

        options["ssl_context"] = create_ssl_context(
            cafile=client.get("ssl_cafile"),
            certfile=client.get("ssl_certfile"),
            keyfile=client.get("ssl_keyfile"),
        )
    return options


def librdkafka_options(client: Mapping[str, Any]) -> dict[str, Any]:
    """``KafkaSettings.client_config()`` mapped onto librdkafka's property names."""
    servers = client["bootstrap_servers"]
    options: dict[str, Any] = {
        "bootstrap.servers": servers if isinstance(servers, str) else ",".join(servers),
        "security.protocol": client.get("security_protocol") or "PLAINTEXT",
    }
    names = {
        "sasl_mechanism": "sasl.mechanism",
        "sasl_plain_username": "sasl.username",
        "sasl_plain_password": "sasl.password",
        "ssl_cafile": "ssl.ca.location",
        "ssl_certfile": "ssl.certificate.location",
        "ssl_keyfile": "ssl.key.location",
    }
    options.update({names[k]: client[k] for k in names if client.get(k) is not None})
    return options
