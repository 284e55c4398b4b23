"""An in-memory twin of the partition state in Redis, for fast unit tests of the pipeline.

``MemoryState`` has the surface of ``PartitionFence`` (claim, fenced write, applied offsets)
and of the stores that read the state back (windows, alert states, latest scores), and passes
the same contract tests (``tests/state/test_partition_fence.py``, parametrised over both),
including the fence's rules and the per-key guard. TTLs are not modelled. Never used by the
workers: integration tests and production always run on Redis.
"""

from __future__ import annotations

from collections.abc import Sequence

from crmrisk.state.alert_state import AlertState
from crmrisk.state.customer_sequence import CustomerSequence, as_sequence
from crmrisk.state.partition_fence import Claim, PartitionWrite, Refusal
from crmrisk.state.records import GUARD, AlertRecord, WindowRecord, unpack_alert, unpack_window

__all__ = ["MemoryState"]


class MemoryState:
    """Fences and customer state in dicts (same contract as Redis, no Redis)."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str, str], bytes] = {}  # (kind, domain, customer) -> value
        self.epochs: dict[tuple[str, int], int] = {}
        self.generations: dict[tuple[str, int], int] = {}
        self.offsets: dict[tuple[str, int], int] = {}
        self.writes = 0  # fenced write calls (tests count round trips with it)

    # -- PartitionFence ---------------------------------------------------------------------
    def claim(self, topic: str, partition: int, generation: int | None) -> Claim:
        key = (topic, partition)
        if generation is not None:
            if self.generations.get(key, -1) > generation:
                return Claim(0, self.offsets.get(key))
            self.generations[key] = generation
        self.epochs[key] = self.epochs.get(key, 0) + 1
        return Claim(self.epochs[key], self.offsets.get(key))

    def write(self, topic: str, writes: Sequence[PartitionWrite]) -> list[Refusal]:
        self.writes += 1
        refused = []
        for w in writes:
            key = (topic, w.partition)
            stored_epoch, stored = self.epochs.get(key), self.offsets.get(key)
            reason = None
            if stored_epoch is None or stored_epoch < w.epoch:
                reason = "lost"
            elif stored_epoch > w.epoch:
                reason = "fenced"
            elif stored != w.new and stored != w.expected:
                reason = "lost"
            if reason is not None:
                refused.append(Refusal(w.partition, reason, stored))
                continue
            for kind, items, guarded in (
                ("w", w.windows, True),
                ("a", w.alerts, True),
                ("s", w.scores, False),
            ):
                for domain, customer, value in items:
                    old = self.values.get((kind, domain, customer))
                    if guarded and old is not None:
                        _, p, epoch = GUARD.unpack_from(old)
                        if p == w.partition and epoch > w.epoch:
                            continue
                    self.values[(kind, domain, customer)] = value
            self.offsets[key] = w.new
        return refused

    def applied(self, topic: str, partitions: Sequence[int]) -> dict[int, int | None]:
        return {p: self.offsets.get((topic, p)) for p in partitions}

    def clear(self, topic: str, partitions: Sequence[int]) -> None:
        for p in partitions:
            self.offsets.pop((topic, p), None)

    def flush(self) -> None:
        """Lose everything, as a Redis restarted without persistence."""
        self.values.clear()
        self.epochs.clear()
        self.generations.clear()
        self.offsets.clear()

    def read(
        self, domain: str, windows: Sequence[str], alerts: Sequence[str]
    ) -> tuple[list[WindowRecord | None], list[AlertRecord | None]]:
        return self.read_windows(domain, windows), self.read_alerts(domain, alerts)

    # -- the readers ------------------------------------------------------------------------
    def read_windows(self, domain: str, customers: Sequence[str]) -> list[WindowRecord | None]:
        return [
            None if (raw := self.values.get(("w", domain, c))) is None else unpack_window(raw)
            for c in customers
        ]

    def read_alerts(self, domain: str, customers: Sequence[str]) -> list[AlertRecord | None]:
        return [
            None if (raw := self.values.get(("a", domain, c))) is None else unpack_alert(raw)
            for c in customers
        ]

    def sequence(self, customer: str, domain: str) -> CustomerSequence:
        return as_sequence(self.read_windows(domain, [customer])[0])

    def alert_state(self, customer: str, domain: str) -> AlertState:
        record = self.read_alerts(domain, [customer])[0]
        return AlertState() if record is None else AlertState(record.armed, record.last_alert_s)

    def latest_score(self, customer: str, domain: str) -> bytes | None:
        return self.values.get(("s", domain, customer))
