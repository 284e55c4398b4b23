"""A local ``redis-server`` on loopback with an append-only file, stopped with SIGTERM."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from deploy.probes import redis_answers
from deploy.process import ManagedProcess

__all__ = ["RedisServer", "RedisStartError"]


class RedisStartError(RuntimeError):
    """redis-server is missing, exited, or did not answer PING in time."""


@dataclass(frozen=True)
class RedisServer:
    """``redis-server`` bound to 127.0.0.1:``port``, running in ``run_dir``."""

    run_dir: Path
    port: int
    binary: str = "redis-server"
    extra_args: tuple[str, ...] = ()  # e.g. cluster mode (``deploy/redis_cluster.py``)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

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
        self.process.start(
            [
                executable,
                "--bind", "127.0.0.1",
                "--port", str(self.port),
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
        while not redis_answers(self.url, timeout_s=0.5):
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
