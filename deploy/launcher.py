"""The local services behind ``crmrisk up | down | status``: Kafka, Redis, and their clusters.

Layout under ``home`` (default ``./var``)::

    kafka/           single broker+controller: server.properties, data/, logs/, kafka.pid
    redis/           redis-server: redis.log, redis.pid
    kafka-cluster/   node-1..3/ like kafka/, plus cluster.id
    redis-cluster/   node-<port>/ x 6: 3 masters + 3 replicas (``deploy/redis_cluster.py``)
    kafka-secure/    the single broker when secured (SASL_SSL, SCRAM-SHA-512), like kafka/
    redis-secure/    redis-server when secured (TLS only, one ACL user), like redis/
    tls/             the local CA and server certificate of both (``deploy/certificates.py``)

Given a ``kafka_login``, the single broker is the secured one (``deploy/kafka_security.py``) and
that SCRAM user is set on it at every ``up``; given a ``redis_login``, redis-server is (TLS and
that ACL user). Secured and plain services keep separate folders, as their data differ (SCRAM
users live in Kafka's metadata); ``down`` stops either.

``up`` is idempotent and serialised by a lock file, so concurrent test runs share one broker:
a service we already run is reused, one that crashed is restarted on its old data, and one that
somebody else runs on the same port is used as it is. ``down`` stops only what ``up`` started.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from crmrisk.deploy.certificates import LocalCertificates
from crmrisk.deploy.jars import kafka_libs_dir, resolve_kafka_jars
from crmrisk.deploy.kafka_broker import KafkaCluster
from crmrisk.deploy.kafka_security import KafkaSecurity
from crmrisk.deploy.probes import kafka_broker_count, redis_answers
from crmrisk.deploy.process import ManagedProcess, exclusive_lock, port_in_use
from crmrisk.deploy.redis_cluster import LocalRedisCluster
from crmrisk.deploy.redis_server import RedisSecurity, RedisServer

__all__ = ["Launcher", "Login", "PortTakenError", "ServiceState"]

log = logging.getLogger(__name__)


class PortTakenError(RuntimeError):
    """Something that is not the expected service holds the port."""


@dataclass(frozen=True)
class Login:
    """A user name and its password (kept out of ``repr``, hence out of logs)."""

    user: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class ServiceState:
    """What ``status`` reports for one service or cluster node."""

    name: str
    endpoint: str
    pid: int | None  # set when this launcher runs it
    answering: bool
    started_s: float | None = None  # seconds ``up`` waited for it, when it started it now
    transient: bool = False  # started by a test run, which will stop it again

    @property
    def owner(self) -> str:
        if self.pid is not None:
            return "launcher (tests)" if self.transient else "launcher"
        return "external" if self.answering else "-"


class Launcher:
    """Starts, stops and reports the local services; plain values in, no environment reads."""

    def __init__(
        self,
        *,
        home: Path,
        cache_dir: Path,
        kafka_version: str,
        kafka_heap: str,
        kafka_port: int,
        kafka_controller_port: int,
        redis_port: int,
        cluster_port: int,
        cluster_controller_port: int,
        cluster_heap: str,
        java: str = "java",
        redis_binary: str = "redis-server",
        redis_cluster_port: int = 17000,
        kafka_login: Login | None = None,
        redis_login: Login | None = None,
    ) -> None:
        self.home = Path(home).resolve()
        self.cache_dir = Path(cache_dir).expanduser()
        self.kafka_version = kafka_version
        self.kafka_login = kafka_login
        self.certificates = LocalCertificates(self.home / "tls")
        libs = kafka_libs_dir(self.cache_dir, kafka_version)
        single = {
            "libs": libs,
            "port": kafka_port,
            "controller_port": kafka_controller_port,
            "heap": kafka_heap,
            "java": java,
        }
        plain_kafka = KafkaCluster(home=self.home / "kafka", **single)
        secure_kafka = KafkaCluster(
            home=self.home / "kafka-secure",
            security=KafkaSecurity(self.certificates, self.home / "kafka-secure" / "broker.secret"),
            **single,
        )
        self.kafka = secure_kafka if kafka_login else plain_kafka
        plain_redis = RedisServer(self.home / "redis", redis_port, redis_binary)
        secure_redis = RedisServer(
            self.home / "redis-secure",
            redis_port,
            redis_binary,
            security=RedisSecurity(self.certificates, redis_login.user, redis_login.password)
            if redis_login
            else None,
        )
        self.redis = secure_redis if redis_login else plain_redis
        # down() stops either kind, whichever the settings now ask for.
        self._single_brokers = (plain_kafka, secure_kafka)
        self._redis_servers = (plain_redis, secure_redis)
        self.cluster = KafkaCluster(
            home=self.home / "kafka-cluster",
            libs=libs,
            port=cluster_port,
            controller_port=cluster_controller_port,
            nodes=3,
            heap=cluster_heap,
            java=java,
        )
        self.redis_cluster = LocalRedisCluster(
            self.home / "redis-cluster", redis_cluster_port, binary=redis_binary
        )

    @property
    def _lock(self) -> Path:
        return self.home / "launcher.lock"

    def _transient_marker(self, name: str, folder: Path | None = None) -> Path:
        folders = {
            "kafka": self.kafka.home,
            "redis": self.redis.run_dir,
            "redis-cluster": self.redis_cluster.home,
        }
        return (folder or folders.get(name, self.cluster.home)) / "transient"

    # -- commands ----------------------------------------------------------------------------

    def up(
        self,
        *,
        kafka: bool = True,
        redis: bool = True,
        cluster: bool = False,
        redis_cluster: bool = False,
        timeout_s: float = 120.0,
        transient: bool = False,
    ) -> list[ServiceState]:
        """Start what is asked and not yet answering; wait until each answers.

        ``transient=True`` (test fixtures) marks what this call starts as transient, so that
        ``down(transient_only=True)`` stops it later; a plain ``up`` (a person) claims what it
        asked for, so that no test run stops it.
        """
        waited: dict[str, float] = {}
        with exclusive_lock(self._lock):
            if redis:
                waited.update(self._redis_up(timeout_s))
            if kafka:
                waited.update(self._kafka_up(self.kafka, "kafka", timeout_s))
            if cluster:
                waited.update(self._kafka_up(self.cluster, "kafka-cluster", timeout_s))
            if redis_cluster:
                began = time.monotonic()
                if self.redis_cluster.start(timeout_s):
                    waited["redis-cluster"] = time.monotonic() - began
            started_now = {name.split(" node ")[0] for name in waited}
            wanted_by_name = (
                ("redis", redis),
                ("kafka", kafka),
                ("kafka-cluster", cluster),
                ("redis-cluster", redis_cluster),
            )
            for name, wanted in wanted_by_name:
                marker = self._transient_marker(name)
                if wanted and not transient:
                    marker.unlink(missing_ok=True)
                elif wanted and name in started_now:
                    marker.touch()
        return [
            ServiceState(s.name, s.endpoint, s.pid, s.answering, waited.get(s.name), s.transient)
            for s in self.status()
        ]

    def down(
        self,
        *,
        kafka: bool = True,
        redis: bool = True,
        cluster: bool = True,
        redis_cluster: bool = True,
        transient_only: bool = False,
    ) -> list[str]:
        """Stop what this launcher started; returns the names of what it stopped.

        ``transient_only=True`` stops only services that ``up(transient=True)`` started.
        """
        stopped: list[str] = []
        with exclusive_lock(self._lock):
            wanted = {
                "kafka-cluster": cluster,
                "redis-cluster": redis_cluster,
                "kafka": kafka,
                "redis": redis,
            }
            for name in [name for name, asked in wanted.items() if asked]:
                if name in ("kafka", "redis"):
                    stopped += self._stop_single(name, transient_only)
                    continue
                if transient_only and not self._transient_marker(name).exists():
                    continue
                if name == "kafka-cluster":
                    stopped += [f"kafka-cluster node {n.node_id}" for n in self.cluster.stop()]
                else:
                    stopped += [f"redis-cluster node {p}" for p in self.redis_cluster.stop()]
                self._transient_marker(name).unlink(missing_ok=True)
        return stopped

    def _stop_single(self, name: str, transient_only: bool) -> list[str]:
        """Stop the single broker or Redis of either kind (plain, secured)."""
        stopped = []
        homes = (
            [(k.home, k.stop) for k in self._single_brokers]
            if name == "kafka"
            else [(r.run_dir, r.stop) for r in self._redis_servers]
        )
        for folder, stop in homes:
            marker = self._transient_marker(name, folder)
            if transient_only and not marker.exists():
                continue
            if stop():
                stopped.append(name)
            marker.unlink(missing_ok=True)
        return stopped

    def status(self) -> list[ServiceState]:
        """One row per service: single broker, Redis, and each cluster node."""
        servers = self.kafka.bootstrap_servers
        kafka_answers = kafka_broker_count(servers, 2.0, client=self._kafka_client())
        rows = [
            self._row(
                "kafka",
                f"SASL_SSL://{servers}" if self.kafka_login else servers,
                self.kafka.members[0].process,
                bool(kafka_answers),
            ),
            self._row("redis", self.redis.url, self.redis.process, self.redis.answers()),
        ]
        for node in self.cluster.members:
            if not node.process.running() and not port_in_use(node.port):
                continue  # the cluster is only listed while (part of) it runs
            answering = bool(kafka_broker_count(node.address, timeout_s=2.0))
            rows.append(
                self._row(
                    f"kafka-cluster node {node.node_id}", node.address, node.process, answering
                )
            )
        for port in self.redis_cluster.ports:
            server = self.redis_cluster.node(port)
            if not server.process.running() and not port_in_use(port):
                continue
            rows.append(
                self._row(f"redis-cluster node {port}", server.url, server.process,
                          redis_answers(server.url))
            )  # fmt: skip
        return rows

    def _row(
        self, name: str, endpoint: str, process: ManagedProcess, answering: bool
    ) -> ServiceState:
        pid = process.pid()
        marker = self._transient_marker(name.split(" node ")[0])
        return ServiceState(
            name, endpoint, pid, answering, transient=pid is not None and marker.exists()
        )

    # -- helpers -----------------------------------------------------------------------------

    def _kafka_client(self) -> dict[str, object]:
        """kafka-python options for the single broker: the client user's when secured."""
        login, security = self.kafka_login, self.kafka.security
        if login is None or security is None:
            return {}
        return security.client_options(login.user, login.password)

    def _redis_up(self, timeout_s: float) -> dict[str, float]:
        if self.redis.security:
            self.certificates.ensure()
        if not self.redis.process.running():
            if self.redis.answers():
                log.info("redis: reusing the server already answering at %s", self.redis.url)
                return {}
            if port_in_use(self.redis.port):
                raise PortTakenError(
                    f"port {self.redis.port} is taken by something that does not answer Redis "
                    f"PING{' over TLS as the ACL user' if self.redis.security else ''}; stop it "
                    "(`crmrisk down`) or set RISK_SERVICES__REDIS_PORT"
                )
        started = self.redis.start()
        waited = self.redis.wait_ready(timeout_s)
        return {"redis": waited} if started else {}

    def _kafka_up(self, kafka: KafkaCluster, name: str, timeout_s: float) -> dict[str, float]:
        waited = self._start_kafka(kafka, name, timeout_s)
        if kafka.security and self.kafka_login:
            login = self.kafka_login
            kafka.security.set_user(kafka.bootstrap_servers, login.user, login.password)
        return waited

    def _start_kafka(self, kafka: KafkaCluster, name: str, timeout_s: float) -> dict[str, float]:
        if kafka.security:
            self.certificates.ensure()
        ours = [node for node in kafka.members if node.process.running()]
        if not ours:
            answering = kafka_broker_count(kafka.bootstrap_servers, client=kafka.client_options())
            if (answering or 0) >= kafka.nodes:
                log.info("%s: reusing the broker(s) at %s", name, kafka.bootstrap_servers)
                return {}
            taken = [
                port
                for node in kafka.members
                for port in (node.port, node.controller_port)
                if port_in_use(port)
            ]
            if taken:
                raise PortTakenError(
                    f"{name}: ports {taken} are taken by something that is not a "
                    f"{'secured ' if kafka.security else ''}Kafka broker of ours (a "
                    f"{'plain' if kafka.security else 'secured'} one? `crmrisk down` first); "
                    "stop it or choose other ports (RISK_SERVICES__*_PORT)"
                )
        resolve_kafka_jars(self.cache_dir, self.kafka_version)
        started = kafka.start()
        waited = kafka.wait_ready(timeout_s)
        if not started:
            return {}
        log.info("%s: %d node(s) answering after %.1f s", name, len(started), waited)
        if name == "kafka-cluster":
            return {f"kafka-cluster node {n.node_id}": waited for n in started}
        return {name: waited}
