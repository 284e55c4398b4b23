"""Apache Kafka in KRaft mode on loopback: one combined broker+controller, or a small cluster.

Each node is a ``kafka.Kafka`` JVM run from the Maven-resolved jars (``deploy/jars.py``) in its
own folder: ``server.properties``, ``data/`` (formatted once with ``kafka.tools.StorageTool``),
``logs/`` (log4j2, see ``deploy/kafka/log4j2.properties``) and a pid file. Restarting a node
after a crash reuses its data folder, so topics and offsets survive.
"""

from __future__ import annotations

import base64
import logging
import os
import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from crmrisk.deploy.kafka_security import CLIENT_LISTENER, KafkaSecurity
from crmrisk.deploy.probes import kafka_broker_count
from crmrisk.deploy.process import ManagedProcess, stop_all

__all__ = ["KafkaCluster", "KafkaNode", "KafkaStartError"]

log = logging.getLogger(__name__)

LOG4J2_CONFIG = Path(__file__).parent / "kafka" / "log4j2.properties"

# Lean JVM for 2 shared cores: one GC thread, class-data sharing, fewer JIT threads.
_JVM_FLAGS = (
    "-XX:+UseSerialGC",
    "-Xshare:auto",
    "-XX:CICompilerCount=2",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)

# Broker settings that suit a laptop or CI box; replication-related ones depend on the size.
_BASE_CONFIG = {
    "process.roles": "broker,controller",
    "controller.listener.names": "CONTROLLER",
    "inter.broker.listener.name": "PLAINTEXT",
    "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
    "num.network.threads": "2",
    "num.io.threads": "2",
    "background.threads": "2",
    "num.recovery.threads.per.data.dir": "1",
    "num.partitions": "1",
    "offsets.topic.num.partitions": "8",
    "group.initial.rebalance.delay.ms": "0",
    "auto.create.topics.enable": "true",
    "log.retention.hours": "24",
    "log.segment.bytes": str(64 * 1024 * 1024),
    # A dead node is fenced after 3 s (default 9 s), so failover tests do not wait long.
    "broker.session.timeout.ms": "3000",
    # Three JVMs starting at once on two busy cores can take longer than the default 60 s to
    # elect a controller and register (a node then exits for good); wait_ready allows 120 s.
    "initial.broker.registration.timeout.ms": "120000",
    "broker.heartbeat.interval.ms": "500",
}


class KafkaStartError(RuntimeError):
    """A Kafka node exited or did not answer in time; the message quotes its log."""


@dataclass(frozen=True)
class KafkaNode:
    """One combined broker+controller process on 127.0.0.1."""

    node_id: int
    port: int
    controller_port: int
    run_dir: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess("kafka", self.run_dir)

    @property
    def config_file(self) -> Path:
        return self.run_dir / "server.properties"

    @property
    def data_dir(self) -> Path:
        return self.run_dir / "data"

    @property
    def logs_dir(self) -> Path:
        return self.run_dir / "logs"


@dataclass(frozen=True)
class KafkaCluster:
    """``nodes`` Kafka nodes sharing one KRaft quorum; ``nodes == 1`` is the single broker.

    Node ``i`` (0-based) listens on ``port + i`` and ``controller_port + i``; with three or more
    nodes, topics default to replication 3 with ``min.insync.replicas`` 2. With ``security``,
    clients must use SASL_SSL (``deploy/kafka_security.py``); without, PLAINTEXT.
    """

    home: Path
    libs: Path
    port: int
    controller_port: int
    nodes: int = 1
    heap: str = "-Xms256m -Xmx768m"
    java: str = "java"
    overrides: Mapping[str, str] = field(default_factory=dict)
    security: KafkaSecurity | None = None

    @property
    def members(self) -> list[KafkaNode]:
        return [
            KafkaNode(
                node_id=i + 1,
                port=self.port + i,
                controller_port=self.controller_port + i,
                run_dir=(self.home / f"node-{i + 1}") if self.nodes > 1 else self.home,
            )
            for i in range(self.nodes)
        ]

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(node.address for node in self.members)

    def client_options(self) -> dict[str, object]:
        """kafka-python options (besides the servers) that reach this cluster: the broker's own
        SCRAM user when it is secured (probes, user administration), none otherwise."""
        return self.security.client_options() if self.security else {}

    def config(self, node: KafkaNode) -> dict[str, str]:
        """The ``server.properties`` of ``node``."""
        replication = str(min(self.nodes, 3))
        min_isr = "2" if self.nodes >= 3 else "1"
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.members)
        clients = CLIENT_LISTENER if self.security else "PLAINTEXT"
        return {
            **_BASE_CONFIG,
            **(self.security.properties() if self.security else {}),
            "node.id": str(node.node_id),
            "controller.quorum.voters": voters,
            "listeners": (
                f"{clients}://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}"
            ),
            "advertised.listeners": f"{clients}://127.0.0.1:{node.port}",
            "log.dirs": str(node.data_dir.resolve()),
            "default.replication.factor": replication,
            "min.insync.replicas": min_isr,
            "offsets.topic.replication.factor": replication,
            "transaction.state.log.replication.factor": replication,
            "transaction.state.log.min.isr": min_isr,
            "share.coordinator.state.topic.replication.factor": replication,
            "share.coordinator.state.topic.min.isr": min_isr,
            **self.overrides,
        }

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> list[KafkaNode]:
        """Start every node that is not running (formatting storage once); returns those started.

        Does not wait: call ``wait_ready`` next. Nodes start together because a multi-node
        quorum only elects a leader once a majority is up.
        """
        pending = [node for node in self.members if not node.process.running()]
        self._format([node for node in pending if self._write_config(node)])
        for i, node in enumerate(pending):
            sharing = self._class_sharing(node, dump=i == 0)
            node.process.start(
                self._java(node, "kafka.Kafka", str(node.config_file), extra=sharing)
            )
        return pending

    def wait_ready(self, timeout_s: float = 120.0) -> float:
        """Block until every node is listed in a metadata answer; returns the seconds waited."""
        began = time.monotonic()
        deadline = began + timeout_s
        while True:
            for node in self.members:
                if node.process.exited():
                    raise KafkaStartError(
                        f"Kafka node {node.node_id} exited during start-up; "
                        f"last lines of {node.process.log_file} and {node.logs_dir}/server.log:\n"
                        f"{_tail(node.process.log_file)}{_tail(node.logs_dir / 'server.log')}"
                    )
            answering = kafka_broker_count(
                self.bootstrap_servers, timeout_s=2.0, client=self.client_options()
            )
            if (answering or 0) >= self.nodes:
                return time.monotonic() - began
            if time.monotonic() > deadline:
                raise KafkaStartError(
                    f"Kafka at {self.bootstrap_servers} did not answer within {timeout_s:.0f} s; "
                    f"see {self.members[0].logs_dir}/server.log:\n"
                    f"{_tail(self.members[0].logs_dir / 'server.log')}"
                )
            time.sleep(0.5)

    def stop(self, timeout_s: float = 30.0) -> list[KafkaNode]:
        """Stop the nodes we started (SIGTERM to all at once, then SIGKILL); returns those."""
        stopped = {p.run_dir for p in stop_all([n.process for n in self.members], timeout_s)}
        for node in self.members:
            self._keep_class_archive(node)
        return [node for node in self.members if node.run_dir in stopped]

    # -- helpers -----------------------------------------------------------------------------

    @property
    def class_archive(self) -> Path:
        """AppCDS archive of the broker's classes, beside the jars: roughly halves start-up."""
        return self.libs.parent / "kafka-classes.jsa"

    def _class_sharing(self, node: KafkaNode, *, dump: bool) -> tuple[str, ...]:
        """JVM flags that use the class archive, or make one node write it when it exits."""
        if self.class_archive.is_file():
            return (f"-XX:SharedArchiveFile={self.class_archive}",)
        if dump:
            # Written at a clean exit into the node's folder; ``stop`` moves it into the cache.
            return (
                f"-XX:ArchiveClassesAtExit={node.run_dir.resolve() / 'classes.jsa'}",
                "-Xlog:cds*=error",  # one line per class it cannot archive otherwise
            )
        return ()

    def _keep_class_archive(self, node: KafkaNode) -> None:
        dumped = node.run_dir / "classes.jsa"
        if not dumped.is_file() or node.process.running():
            return
        if not self.class_archive.is_file():
            # Copy next to the target, then rename: no reader ever sees half a file.
            partial = self.class_archive.with_name(f"{self.class_archive.name}.{os.getpid()}")
            shutil.copyfile(dumped, partial)
            os.replace(partial, self.class_archive)
        dumped.unlink()

    def _cluster_id(self) -> str:
        """One id per cluster folder, made once: every node is formatted with it."""
        path = self.home / "cluster.id"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(_random_cluster_id())
        return path.read_text().strip()

    def _write_config(self, node: KafkaNode) -> bool:
        """Write ``server.properties``; returns True when the data folder needs formatting."""
        node.run_dir.mkdir(parents=True, exist_ok=True)
        node.logs_dir.mkdir(exist_ok=True)
        lines = [f"{key}={value}" for key, value in self.config(node).items()]
        # Secured, the file holds the key store's and the broker user's passwords: owner only.
        node.config_file.touch(mode=0o600)
        node.config_file.chmod(0o600)
        node.config_file.write_text("# written by deploy/kafka_broker.py\n" + "\n".join(lines))
        return not (node.data_dir / "meta.properties").is_file()

    def _format(self, nodes: list[KafkaNode]) -> None:
        """``kafka.tools.StorageTool format`` for each node, in parallel (a JVM start each)."""
        cluster_id = self._cluster_id()
        runs = []
        for node in nodes:
            command = self._java(
                node,
                "kafka.tools.StorageTool",
                "format",
                "--cluster-id",
                cluster_id,
                "--config",
                str(node.config_file),
                "--ignore-formatted",
                *(self.security.format_args() if self.security else ()),
                heap="-Xmx256m",
                # Short-lived: C1 only starts fastest.
                extra=("-XX:TieredStopAtLevel=1", *self._class_sharing(node, dump=False)),
            )
            runs.append(
                (
                    node,
                    subprocess.Popen(
                        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
                    ),
                )
            )
        failures = []
        for node, run in runs:
            output, _ = run.communicate()
            if run.returncode != 0:
                failures.append(f"{node.data_dir} (exit {run.returncode}):\n{output[-2000:]}")
        if failures:
            raise KafkaStartError("formatting KRaft storage failed: " + "\n".join(failures))

    def _java(
        self,
        node: KafkaNode,
        main: str,
        *args: str,
        heap: str | None = None,
        extra: tuple[str, ...] = (),
    ) -> list[str]:
        return [
            self.java,
            *shlex.split(heap or self.heap),
            *_JVM_FLAGS,
            *extra,
            f"-Dkafka.logs.dir={node.logs_dir.resolve()}",
            f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}",
            "-cp",
            f"{self.libs}/*",
            main,
            *args,
        ]


def _random_cluster_id() -> str:
    """Kafka's Uuid text form: URL-safe base64 of 16 bytes, without padding.

    Like Kafka's own ``Uuid.randomUuid``, never starting with "-", which the storage tool's
    argument parser would take for an option.
    """
    while (text := base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))[0] == "-":
        pass
    return text


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "".join(path.read_text(errors="replace").splitlines(keepends=True)[-lines:])
    except FileNotFoundError:
        return ""
