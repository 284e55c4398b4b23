"""A local Redis Cluster: 3 masters with a replica each, ``redis-server --cluster-enabled yes``.

Six ``RedisServer`` processes on consecutive ports (masters first), joined once by
``redis-cli --cluster create ... --cluster-replicas 1``; each node keeps its ``nodes.conf`` and
append-only file in its own folder, so a node that is killed and started again rejoins the
cluster it was in (as a replica if its replica was promoted meanwhile). ``node_timeout_ms`` is
short (2 s) so that a failover in tests takes seconds, not the default 15 s.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from crmrisk.deploy.redis_server import RedisServer, RedisStartError

__all__ = ["LocalRedisCluster"]


@dataclass(frozen=True)
class LocalRedisCluster:
    """``masters`` x (1 + ``replicas``) nodes on 127.0.0.1 from ``first_port`` on, in ``home``."""

    home: Path
    first_port: int
    masters: int = 3
    replicas: int = 1
    node_timeout_ms: int = 2000
    binary: str = "redis-server"

    @property
    def ports(self) -> list[int]:
        return [self.first_port + i for i in range(self.masters * (1 + self.replicas))]

    @property
    def url(self) -> str:
        """Any node serves as the entry point; the client learns the rest from it."""
        return f"redis://127.0.0.1:{self.first_port}/0"

    def node(self, port: int) -> RedisServer:
        return RedisServer(
            self.home / f"node-{port}",
            port,
            self.binary,
            extra_args=(
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(self.node_timeout_ms),
                # A master whose slots are partly down still serves the others.
                "--cluster-require-full-coverage", "no",
                # A replica syncs at once (the default waits 5 s for more replicas to batch).
                "--repl-diskless-sync-delay", "0",
            ),
        )  # fmt: skip

    def start(self, timeout_s: float = 60.0) -> list[int]:
        """Start the nodes not running, form the cluster once, wait until it serves every slot.

        Returns the ports it started.
        """
        started = [port for port in self.ports if self.node(port).start()]
        for port in self.ports:
            self.node(port).wait_ready(timeout_s)
        if not self._formed():
            self._create(timeout_s)
        self.wait_ok(timeout_s)
        self.wait_replicated(timeout_s)
        return started

    def wait_replicated(self, timeout_s: float = 60.0) -> float:
        """Block until every master has ``replicas`` replicas online (synced)."""
        began = time.monotonic()
        while True:
            lagging = []
            for port in self.masters_now():
                info = redis.Redis(port=port, socket_timeout=1).info("replication")
                online = [
                    v for k, v in info.items()
                    if k.startswith("slave") and isinstance(v, dict) and v.get("state") == "online"
                ]  # fmt: skip
                if len(online) < self.replicas:
                    lagging.append(port)
            if not lagging:
                return time.monotonic() - began
            if time.monotonic() - began > timeout_s:
                raise RedisStartError(f"masters {lagging} have no synced replica in {timeout_s} s")
            time.sleep(0.2)

    def stop(self) -> list[int]:
        return [port for port in self.ports if self.node(port).stop()]

    def kill(self, port: int) -> bool:
        """SIGKILL one node (tests: a crashed master)."""
        return self.node(port).process.kill()

    def masters_now(self) -> list[int]:
        """Ports of the nodes that are masters at this moment (answering ones only)."""
        out = []
        for port in self.ports:
            try:
                role = redis.Redis(port=port, socket_timeout=1).execute_command("ROLE")[0]
            except redis.RedisError:
                continue
            if (role.decode() if isinstance(role, bytes) else role) == "master":
                out.append(port)
        return out

    def wait_ok(self, timeout_s: float = 60.0) -> float:
        """Block until every answering node reports ``cluster_state:ok``; returns the wait."""
        began = time.monotonic()
        while True:
            states = []
            for port in self.ports:
                try:
                    states.append(redis.Redis(port=port, socket_timeout=1).cluster("info"))
                except redis.RedisError:
                    continue
            if states and all(s.get("cluster_state") == "ok" for s in states):
                return time.monotonic() - began
            if time.monotonic() - began > timeout_s:
                raise RedisStartError(f"redis cluster not ok within {timeout_s:.0f} s: {states}")
            time.sleep(0.2)

    def _formed(self) -> bool:
        info = redis.Redis(port=self.first_port, socket_timeout=2).cluster("info")
        return int(info.get("cluster_known_nodes", 1)) >= len(self.ports)

    def _create(self, timeout_s: float) -> None:
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RedisStartError("redis-cli not found: run `make setup` (package redis-tools)")
        command = [
            cli, "--cluster", "create", *[f"127.0.0.1:{p}" for p in self.ports],
            "--cluster-replicas", str(self.replicas), "--cluster-yes",
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
        if done.returncode != 0:
            raise RedisStartError(f"redis-cli --cluster create failed:\n{done.stdout}{done.stderr}")
