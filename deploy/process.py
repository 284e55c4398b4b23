"""Detached service processes tracked by pid files, and stopped only when they are ours.

A pid file alone is not proof: after a crash the number may belong to someone else's process.
Every process we start runs in its own folder (``run_dir``), and we only signal a pid whose
working directory (``/proc/<pid>/cwd``) is still that folder. The working directory survives
what a command line does not: redis-server rewrites its process title.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ManagedProcess",
    "exclusive_lock",
    "port_in_use",
    "stop_all",
]

log = logging.getLogger(__name__)


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Serialise ``up``/``down`` across processes (several test runs may start at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


@dataclass(frozen=True)
class ManagedProcess:
    """One detached process, known by the folder it runs in; pid and log files live there too."""

    name: str
    run_dir: Path

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / f"{self.name}.out"

    def pid(self) -> int | None:
        """The pid of our live process, or None (a stale pid file is removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if _alive(pid) and _cwd(pid) == self.run_dir.resolve():
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def running(self) -> bool:
        return self.pid() is not None

    def start(self, argv: Sequence[str], env: dict[str, str] | None = None) -> int:
        """Start ``argv`` in ``run_dir`` and its own session (it outlives the CLI)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            child = subprocess.Popen(
                list(argv),
                cwd=self.run_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
                close_fds=True,
            )
        self.pid_file.write_text(f"{child.pid}\n")
        return child.pid

    def exited(self) -> bool:
        """True when the process we started has died (reaps it if it is our child)."""
        pid = self.pid()
        if pid is None:
            return True
        with contextlib.suppress(ChildProcessError):
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                self.pid_file.unlink(missing_ok=True)
                return True
        return False

    def stop(self, timeout_s: float = 30.0) -> bool:
        """SIGTERM, wait up to ``timeout_s``, then SIGKILL. Returns False if nothing ran."""
        return bool(stop_all([self], timeout_s))

    def kill(self) -> bool:
        """SIGKILL without a clean shutdown (tests use it to simulate a crash)."""
        pid = self.pid()
        if pid is None:
            return False
        _signal(pid, signal.SIGKILL)
        _wait_gone(pid, 10.0)
        return True


def stop_all(processes: Sequence[ManagedProcess], timeout_s: float = 30.0) -> list[ManagedProcess]:
    """Stop several processes together; returns those that were running.

    All get SIGTERM at once: nodes of one Kafka cluster wait for each other while shutting
    down (a lone survivor has no quorum), so stopping them one by one would hang.
    """
    running = [(process, pid) for process in processes if (pid := process.pid()) is not None]
    for _, pid in running:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for process, pid in running:
        if not _wait_gone(pid, max(0.0, deadline - time.monotonic())):
            log.warning(
                "%s (pid %d) ignored SIGTERM for %.0f s: SIGKILL", process.name, pid, timeout_s
            )
            _signal(pid, signal.SIGKILL)
            _wait_gone(pid, 10.0)
        process.pid_file.unlink(missing_ok=True)
    return [process for process, _ in running]


def _cwd(pid: int) -> Path | None:
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd"))
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def _alive(pid: int) -> bool:
    """True for a running process; a zombie (dead, not yet reaped) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    # The state letter follows the parenthesised command name, which may itself hold spaces.
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        # Reap our own child so it does not linger as a zombie.
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return not _alive(pid)
