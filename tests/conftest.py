"""Shared fixtures: a real Kafka broker and a real Redis for every test that asks for one.

Where the services come from, first match wins (per service):

1. the environment: ``KAFKA_BOOTSTRAP_SERVERS`` / ``RISK_KAFKA__BOOTSTRAP_SERVERS`` and
   ``REDIS_URL`` / ``RISK_REDIS__URL`` point at services someone runs;
2. testcontainers (``apache/kafka:4.1.2``, ``redis:7``) when a Docker engine answers;
3. the local launcher (``deploy/``, the same one as ``crmrisk up``) on 127.0.0.1:9092 and
   127.0.0.1:6379 with ``./var`` as its home. Services that already answer are reused (e.g.
   after ``crmrisk up``) and left running; what a test run starts is stopped when the last
   concurrent test run ends (``_LocalServices``), so no stray processes remain.

Fixtures (names are stable; other test modules rely on them):

``kafka_bootstrap`` (session) -> str
    ``"host:port[,host:port]"`` of a broker that answered a metadata request.
``redis_url`` (session) -> str
    ``"redis://host:port/db"`` of a Redis that answered PING.
``settings`` (session) -> crmrisk.settings.Settings
    Settings pointed at the two endpoints above (other fields: defaults and environment).
``new_topic`` (function) -> callable ``new_topic(partitions=1, replication=1, prefix="test")``
    Creates a uniquely named topic and returns its name; every topic it made is deleted after
    the test. Use one per test instead of shared topic names.
``redis_prefix`` (function) -> str
    A fresh key prefix (``"test:<hex>:"``); pass it as the key prefix of the stores under test.
``redis_client`` (function) -> redis.Redis
    A client on ``redis_url``; every key starting with ``redis_prefix`` is deleted after the
    test. Never call FLUSHDB: the Redis is shared with other test runs.

A service that cannot be had fails the test with the reason (no silent skips).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from crmrisk.commands.services import build_launcher
from crmrisk.deploy import Launcher, kafka_broker_count, redis_answers
from crmrisk.deploy.process import exclusive_lock
from crmrisk.settings import Settings

ROOT = Path(__file__).resolve().parents[1]

KAFKA_IMAGE = "apache/kafka:4.1.2"
REDIS_IMAGE = "redis:7"
# apache/kafka's image takes its whole server.properties from KAFKA_* variables once one is set.
_KAFKA_CONTAINER_ENV = {
    "KAFKA_NODE_ID": "1",
    "KAFKA_PROCESS_ROLES": "broker,controller",
    "KAFKA_LISTENERS": "PLAINTEXT://:9092,CONTROLLER://:9093",
    "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
    "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
    "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
    "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
    "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
    "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
    "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "integration: needs the real Kafka broker and/or Redis (see tests/conftest.py)"
    )


def _from_env(*names: str) -> str | None:
    return next((os.environ[name] for name in names if os.environ.get(name)), None)


def _docker_answers() -> bool:
    """A quick yes/no: is there a Docker engine? (No socket, no wait.)"""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://") and not Path(host.removeprefix("unix://")).exists():
        return False
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # any failure means "no usable engine": fall through to the launcher
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(ready: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not answer within {timeout_s:.0f} s")
        time.sleep(0.5)


@contextlib.contextmanager
def _kafka_container() -> Iterator[str]:
    """apache/kafka in KRaft mode; testcontainers' KafkaContainer only drives Confluent images.

    The advertised listener must name the port the host sees, so the port is chosen up front.
    """
    from testcontainers.core.container import DockerContainer

    port = _free_port()
    container = DockerContainer(KAFKA_IMAGE).with_bind_ports(9092, port)
    for name, value in {
        **_KAFKA_CONTAINER_ENV,
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://localhost:{port}",
    }.items():
        container.with_env(name, value)
    with container:
        servers = f"localhost:{port}"
        _wait(lambda: bool(kafka_broker_count(servers)), 90.0, f"kafka container at {servers}")
        yield servers


class _LocalServices:
    """The launcher's Kafka and Redis as test runs share them.

    Each run holds a lease (a file named by its pid) while it uses them. A service a test run
    started is marked transient, and the last run to leave stops it, so concurrent runs never
    lose their broker mid-test and nothing stays behind. What `crmrisk up` started is left be.
    """

    def __init__(self, launcher: Launcher) -> None:
        self.launcher = launcher
        self.leases = launcher.home / "test-leases"
        self.lease = self.leases / str(os.getpid())

    def ensure(self, service: str, answering: Callable[[], bool]) -> None:
        with exclusive_lock(self.leases.with_suffix(".lock")):
            self.leases.mkdir(parents=True, exist_ok=True)
            self.lease.touch()
        if not answering():
            self.launcher.up(
                kafka=service == "kafka",
                redis=service == "redis",
                transient=True,
                timeout_s=Settings().services.start_timeout_s,
            )

    def release(self) -> None:
        with exclusive_lock(self.leases.with_suffix(".lock")):
            self.lease.unlink(missing_ok=True)
            for lease in self.leases.glob("*"):
                if not Path(f"/proc/{lease.name}").exists():
                    lease.unlink(missing_ok=True)  # a run that died without cleaning up
            if not any(self.leases.glob("*")):
                self.launcher.down(cluster=False, transient_only=True)


@pytest.fixture(scope="session")
def _local_services() -> Iterator[_LocalServices]:
    services = Settings().services
    if not services.home.is_absolute():  # the default ./var means the repository's var/
        services = services.model_copy(update={"home": ROOT / services.home})
    local = _LocalServices(build_launcher(services))
    yield local
    local.release()


@pytest.fixture(scope="session")
def kafka_bootstrap(request: pytest.FixtureRequest) -> Iterator[str]:
    given = _from_env("RISK_KAFKA__BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS")
    if given:
        if not kafka_broker_count(given, timeout_s=10.0):
            pytest.fail(f"KAFKA_BOOTSTRAP_SERVERS={given} does not answer a metadata request")
        yield given
        return
    if _docker_answers():
        with _kafka_container() as servers:
            yield servers
        return
    local = request.getfixturevalue("_local_services")
    servers = local.launcher.kafka.bootstrap_servers
    local.ensure("kafka", lambda: bool(kafka_broker_count(servers)))
    yield servers


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest) -> Iterator[str]:
    given = _from_env("RISK_REDIS__URL", "REDIS_URL")
    if given:
        if not redis_answers(given, timeout_s=5.0):
            pytest.fail(f"REDIS_URL={given} does not answer PING")
        yield given
        return
    if _docker_answers():
        from testcontainers.core.container import DockerContainer

        with DockerContainer(REDIS_IMAGE).with_exposed_ports(6379) as container:
            host = container.get_container_host_ip()
            url = f"redis://{host}:{container.get_exposed_port(6379)}/0"
            _wait(lambda: redis_answers(url), 30.0, f"redis container at {url}")
            yield url
        return
    local = request.getfixturevalue("_local_services")
    url = local.launcher.redis.url
    local.ensure("redis", lambda: redis_answers(url))
    yield url


@pytest.fixture(scope="session")
def settings(kafka_bootstrap: str, redis_url: str) -> Settings:
    return Settings(kafka={"bootstrap_servers": kafka_bootstrap}, redis={"url": redis_url})


@pytest.fixture
def new_topic(kafka_bootstrap: str) -> Iterator[Callable[..., str]]:
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap.split(","), client_id="tests")
    created: list[str] = []

    def make(partitions: int = 1, replication: int = 1, prefix: str = "test") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        admin.create_topics([NewTopic(name, partitions, replication)])
        created.append(name)
        _wait_for_leaders(admin, name, partitions)
        return name

    yield make
    with contextlib.suppress(Exception):
        if created:
            admin.delete_topics(created)
    admin.close()


def _wait_for_leaders(admin: object, topic: str, partitions: int, timeout_s: float = 30.0) -> None:
    """Creation returns before every partition has a leader; producers need one."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        described = admin.describe_topics([topic])  # type: ignore[attr-defined]
        parts = described[0].get("partitions", []) if described else []
        if len(parts) == partitions and all(p.get("leader_id", -1) >= 0 for p in parts):
            return
        time.sleep(0.1)
    raise TimeoutError(f"topic {topic}: partitions without a leader after {timeout_s:.0f} s")


@pytest.fixture
def redis_prefix() -> str:
    return f"test:{uuid.uuid4().hex[:12]}:"


@pytest.fixture
def redis_client(redis_url: str, redis_prefix: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    keys = list(client.scan_iter(match=f"{redis_prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()
