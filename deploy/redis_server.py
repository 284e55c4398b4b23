"""A local ``redis-server`` on loopback with an append-only file, stopped with SIGTERM.

Secured (``RedisSecurity``), it speaks TLS only (``rediss://``, certificates from
``deploy/certificates.py``) and knows one ACL user: the ``default`` user is off, so nothing
happens without logging in. The ACL file holds the password's SHA-256, never the password.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crmrisk.deploy.certificates import LocalCertificates
from crmrisk.deploy.probes import redis_answers
from crmrisk.deploy.process import ManagedProcess

__all__ = ["RedisSecurity", "RedisServer", "RedisStartError"]


class RedisStartError(RuntimeError):
    """redis-server is missing, exited, or did not answer PING in time."""


@dataclass(frozen=True)
class RedisSecurity:
    """TLS with our own CA, and one ACL user with every right (the only way in)."""

    certificates: LocalCertificates
    username: str
    password: str = field(repr=False)

    def acl(self) -> str:
        """The ACL file: ``default`` off, ``username`` on with all keys, channels, commands."""
        digest = hashlib.sha256(self.password.encode()).hexdigest()
        return f"user default off\nuser {self.username} on #{digest} ~* &* +@all\n"

    def args(self, port: int, acl_file: Path) -> list[str]:
        c = self.certificates
        return [
            "--port", "0",  # no plaintext port at all
            "--tls-port", str(port),
            "--tls-cert-file", str(c.cert_pem.resolve()),
            "--tls-key-file", str(c.key_pem.resolve()),
            "--tls-ca-cert-file", str(c.ca_pem.resolve()),
            "--tls-auth-clients", "no",  # clients prove themselves with the ACL password
            "--aclfile", str(acl_file.resolve()),
        ]  # fmt: skip

    def client_options(self) -> dict[str, Any]:
        """redis-py keyword arguments that log in as the user and trust the CA."""
        return {
            "username": self.username,
            "password": self.password,
            "ssl_ca_certs": str(self.certificates.ca_pem),
        }


@dataclass(frozen=True)
class RedisServer:
    """``redis-server`` bound to 127.0.0.1:``port``, running in ``run_dir``."""

    run_dir: Path
    port: int
    binary: str = "redis-server"
    extra_args: tuple[str, ...] = ()  # e.g. cluster mode (``deploy/redis_cluster.py``)
    security: RedisSecurity | None = None

    @property
    def url(self) -> str:
        scheme = "rediss" if self.security else "redis"
        return f"{scheme}://127.0.0.1:{self.port}/0"

    def client_options(self) -> dict[str, Any]:
        """redis-py keyword arguments (besides the URL) that reach this server."""
        return self.security.client_options() if self.security else {}

    def answers(self, timeout_s: float = 1.0) -> bool:
        return redis_answers(self.url, timeout_s, **self.client_options())

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess("redis", self.run_dir)

    @property
    def log_file(self) -> Path:
        return self.run_dir / "redis.log"

    def start(self) -> bool:
        """Start unless already running; returns True when it started a process."""
        if self.process.running():
            return False
        executable = shutil.which(self.binary)
        if executable is None:
            raise RedisStartError(
                f"{self.binary} not found: run `make setup` or `apt-get install redis-server`."
            )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.security is None:
            listen = ["--port", str(self.port)]
        else:
            acl_file = self.run_dir / "users.acl"
            descriptor = os.open(acl_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(self.security.acl())
            listen = self.security.args(self.port, acl_file)
        self.process.start(
            [
                executable,
                "--bind", "127.0.0.1",
                *listen,
                "--dir", str(self.run_dir.resolve()),
                "--logfile", str(self.log_file.resolve()),
                # The append-only file (fsync every second) makes a restart cheap: windows come
                # back from disk; what is lost anyway the workers rebuild from crm.events.
                "--save", "",
                "--appendonly", "yes",
                "--appendfsync", "everysec",
                "--maxmemory-policy", "noeviction",
                "--daemonize", "no",
                *self.extra_args,
            ]
        )  # fmt: skip
        return True

    def wait_ready(self, timeout_s: float = 20.0) -> float:
        """Block until PING answers; returns the seconds waited."""
        began = time.monotonic()
        while not self.answers(timeout_s=0.5):
            if self.process.exited():
                raise RedisStartError(f"redis-server exited; see {self.log_file}:\n{_tail(self)}")
            if time.monotonic() - began > timeout_s:
                raise RedisStartError(f"redis-server did not answer within {timeout_s:.0f} s")
            time.sleep(0.1)
        return time.monotonic() - began

    def stop(self, timeout_s: float = 10.0) -> bool:
        """SIGTERM (then SIGKILL); returns False if it was not running."""
        return self.process.stop(timeout_s)


def _tail(server: RedisServer, lines: int = 10) -> str:
    text = ""
    for path in (server.process.log_file, server.log_file):
        if path.is_file():
            text += "".join(path.read_text(errors="replace").splitlines(keepends=True)[-lines:])
    return text
