"""A local broker that only authenticated clients reach: SASL_SSL with SCRAM-SHA-512.

Clients connect over TLS (``LocalCertificates``: a CA of our own) and log in with a SCRAM user;
brokers log in to each other the same way, as ``broker_user``. The KRaft controller listener
speaks TLS and requires a client certificate (SCRAM cannot guard it: the controller serves the
very metadata that holds the SCRAM credentials), so a local user without the key gets nowhere.

SCRAM credentials live in the cluster metadata: the broker's own user is added when the storage
is formatted (``format_args``), and client users are added or updated on a running broker with
``set_user`` (a changed password takes effect at the next ``crmrisk up``). This is
authentication only: every authenticated user may do everything (no ACL authorizer).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crmrisk.deploy.certificates import LocalCertificates

__all__ = ["CLIENT_LISTENER", "MECHANISM", "KafkaSecurity"]

MECHANISM = "SCRAM-SHA-512"
CLIENT_LISTENER = "SASL_SSL"  # the listener's name is its protocol's

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KafkaSecurity:
    """What a secured ``KafkaCluster`` needs: certificates and the broker's own SCRAM user.

    ``password_file`` holds the broker user's random password (made once, mode 0600; it is
    formatted into the metadata, so it must not change while the data folder lives).
    """

    certificates: LocalCertificates
    password_file: Path
    broker_user: str = "crmrisk-broker"

    def broker_password(self) -> str:
        if not self.password_file.is_file():
            self.password_file.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_urlsafe(24))
        return self.password_file.read_text()

    def properties(self) -> dict[str, str]:
        """``server.properties`` entries besides the listeners (``KafkaCluster.config``)."""
        c = self.certificates
        login = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{self.broker_user}" password="{self.broker_password()}";'
        )
        return {
            "listener.security.protocol.map": f"{CLIENT_LISTENER}:SASL_SSL,CONTROLLER:SSL",
            "inter.broker.listener.name": CLIENT_LISTENER,
            "sasl.enabled.mechanisms": MECHANISM,
            "sasl.mechanism.inter.broker.protocol": MECHANISM,
            f"listener.name.{CLIENT_LISTENER.lower()}.{MECHANISM.lower()}.sasl.jaas.config": login,
            "listener.name.controller.ssl.client.auth": "required",
            "ssl.keystore.type": "PKCS12",
            "ssl.keystore.location": str(c.keystore.resolve()),
            "ssl.keystore.password": c.store_password(),
            "ssl.key.password": c.store_password(),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(c.ca_pem.resolve()),
        }

    def format_args(self) -> tuple[str, ...]:
        """``StorageTool format`` arguments that add the broker's own SCRAM user."""
        user = f"{MECHANISM}=[name={self.broker_user},password={self.broker_password()}]"
        return ("--add-scram", user)

    def client_options(
        self, user: str | None = None, password: str | None = None
    ) -> dict[str, Any]:
        """kafka-python options that log in as ``user``, by default the broker's own user
        (probes, ``set_user``)."""
        return {
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": MECHANISM,
            "sasl_plain_username": user or self.broker_user,
            "sasl_plain_password": password if user else self.broker_password(),
            "ssl_cafile": str(self.certificates.ca_pem),
        }

    def set_user(self, bootstrap_servers: str, user: str, password: str) -> None:
        """Add ``user`` with ``password`` (SCRAM-SHA-512), or give it that password."""
        from kafka import KafkaAdminClient
        from kafka.admin import UserScramCredentialUpsertion

        # kafka-python logs each connection at INFO: keep `crmrisk up` to its own lines.
        quiet = logging.getLogger("kafka")
        level = quiet.level
        quiet.setLevel(logging.WARNING)
        admin = None
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=bootstrap_servers.split(","),
                client_id="crmrisk-launcher",
                **self.client_options(),
            )
            upsert = UserScramCredentialUpsertion(user, MECHANISM, password)
            errors = admin.alter_user_scram_credentials([upsert])
        finally:
            if admin is not None:
                with contextlib.suppress(Exception):
                    admin.close()
            quiet.setLevel(level)
        if failed := {name: error for name, error in errors.items() if error}:
            raise RuntimeError(f"could not set the SCRAM credential of {failed}")
        log.info("kafka: SCRAM user %s is set", user)
