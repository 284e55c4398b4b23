"""Who owns a partition's state in Redis, and how far it is applied: the fence of every write.

A worker keeps the state of its partitions' customers in memory and writes the changed ones to
Redis once per batch. Kafka moves partitions between workers (rebalances), and a worker that was
paused past its session timeout (a zombie) may still write after another took its partitions
over. Each (topic, partition) therefore has, in one Redis hash per topic:

- an **epoch**, raised by every ``claim``: a worker claims a partition before it touches its
  state and stamps its writes with the epoch; a write of an older epoch is refused ('fenced').
  A claim carries the consumer group generation, and one of an older generation than the last
  claim's is refused: a zombie never takes a partition back from its new owner;
- the **next offset** to apply: the state holds every record of the partition below it. A
  batch's write names the offset it expects there (where its records start) and the one it
  leaves; anything else means Redis lost or rolled back the partition's state ('lost'), and the
  worker rebuilds it from the topic. At a claim it also tells the worker which of the records
  it is about to get were applied already (redeliveries: scored, not applied again) and
  whether a tail is missing (records the consumer group committed that the state lacks).

The check and every state key of the partitions in a batch are one script call (one round trip,
``partition_fence.lua``), not per event. On a Redis Cluster, state keys live on many slots: each
slot's keys are one call, guarded per key (a value carries its writer's partition and epoch and
never replaces a newer owner's), then the fences move in one call on their own slot.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources

import redis

from state.errors import StateError
from state.keys import alert_key, fence_key, score_key, window_key
from state.pipeline import is_cluster, round_trip, slot_of
from state.records import AlertRecord, WindowRecord, unpack_alert, unpack_window

__all__ = ["Claim", "PartitionFence", "PartitionWrite", "Refusal"]

_SCRIPT = resources.files("state").joinpath("partition_fence.lua").read_text()


@dataclass(frozen=True, slots=True)
class Claim:
    epoch: int  # 0: refused, a newer consumer group generation owns the partition
    applied: int | None  # next offset to apply; None: Redis holds nothing for the partition


@dataclass(frozen=True, slots=True)
class Refusal:
    partition: int
    reason: str  # 'fenced' (a newer owner claimed it) | 'lost' (Redis lost or rolled it back)
    applied: int | None  # the next offset Redis holds now


@dataclass
class PartitionWrite:
    """One partition's share of a batch: its fence and its changed customers' state."""

    partition: int
    epoch: int
    expected: int | None  # next offset the state held before this batch (None: nothing)
    new: int  # next offset after it
    windows: list[tuple[str, str, bytes]] = field(default_factory=list)  # (domain, customer, rec)
    alerts: list[tuple[str, str, bytes]] = field(default_factory=list)
    scores: list[tuple[str, str, bytes]] = field(default_factory=list)  # latest score JSON


class PartitionFence:
    """Claims, fenced writes and applied offsets of partitions' state in Redis.

    Parameters
    ----------
    client
        A ``redis.Redis`` or cluster client.
    prefix
        Key prefix of the deployment (``Settings.redis.key_prefix``).
    ttl_s
        Customers' keys expire this long after their last write.
    wait_replicas, wait_timeout_ms
        After each write, ``WAIT`` for this many replicas (0: don't), so a failover loses none.
    """

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        ttl_s: int,
        wait_replicas: int,
        wait_timeout_ms: int,
    ) -> None:
        if ttl_s < 1:
            raise ValueError(f"ttl_s must be >= 1, got {ttl_s}")
        self._client = client
        self._prefix = prefix
        self.ttl_s = ttl_s
        self.wait_replicas = wait_replicas
        self.wait_timeout_ms = wait_timeout_ms
        self._cluster = is_cluster(client)
        # EVALSHA by the script's SHA1, loaded on the first NOSCRIPT: no Redis needed to build.
        self._sha = hashlib.sha1(_SCRIPT.encode()).hexdigest()

    def claim(self, topic: str, partition: int, generation: int | None) -> Claim:
        """Take ``partition`` over: a new epoch (older owners' writes are refused from now on)
        and the next offset its state holds; epoch 0 when a member of a newer consumer group
        ``generation`` claimed it already (this worker lost it in a rebalance it missed)."""
        key = fence_key(self._prefix, topic)
        gen = "" if generation is None else generation
        reply = self._run([[1, key, "claim", partition, gen]])[0]
        epoch, applied = reply
        return Claim(int(epoch), None if applied is None else int(applied))

    def write(self, topic: str, writes: Sequence[PartitionWrite]) -> list[Refusal]:
        """Write the partitions' state if their fences pass; returns the refused partitions."""
        if not writes:
            return []
        fences: list = []
        for w in writes:
            expected = "" if w.expected is None else w.expected
            fences += [w.partition, w.epoch, expected, w.new]
        keys, values = self._state(writes)
        if not self._cluster:
            call = [
                1 + len(keys),
                fence_key(self._prefix, topic),
                *keys,
                "write",
                self.ttl_s,
                len(writes),
                *fences,
                *values,
            ]
            return _refusals(self._run([call], wait=True)[0])
        # A cluster: each slot's state keys (guarded per key), then the fences on their slot.
        groups: dict[int, list[int]] = {}
        for i, key in enumerate(keys):
            groups.setdefault(slot_of(key), []).append(i)
        calls = []
        for rows in groups.values():
            args = [v for i in rows for v in values[4 * i : 4 * i + 4]]
            calls.append([len(rows), *(keys[i] for i in rows), "write", self.ttl_s, 0, *args])
        self._run(calls, wait=True)
        fence = [1, fence_key(self._prefix, topic), "write", self.ttl_s, len(writes), *fences]
        return _refusals(self._run([fence], wait=True)[0])

    def _state(self, writes: Sequence[PartitionWrite]) -> tuple[list[str], list]:
        keys: list[str] = []
        values: list = []
        p = self._prefix
        # One Redis checks the fence and writes in one script: no per-key guard needed there.
        guard = 1 if self._cluster else 0
        for w in writes:
            for key_of, items, guarded in (
                (window_key, w.windows, guard),
                (alert_key, w.alerts, guard),
                (score_key, w.scores, 0),
            ):
                for domain, customer, value in items:
                    keys.append(key_of(p, domain, customer))
                    values += [w.partition, w.epoch, guarded, value]
        return keys, values

    def read(
        self, domain: str, windows: Sequence[str], alerts: Sequence[str]
    ) -> tuple[list[WindowRecord | None], list[AlertRecord | None]]:
        """The window records of ``windows`` and the alert records of ``alerts`` (customers of
        ``domain``; None where Redis has none), in one round trip: a worker loading customers."""
        p = self._prefix
        commands = [["GET", window_key(p, domain, c)] for c in windows]
        commands += [["GET", alert_key(p, domain, c)] for c in alerts]
        if not commands:
            return [], []
        try:
            replies = round_trip(self._client, commands)
        except redis.RedisError as exc:
            raise StateError(f"reading {len(commands)} customer states failed: {exc}") from exc
        n = len(windows)
        return (
            [None if r is None else unpack_window(r) for r in replies[:n]],
            [None if r is None else unpack_alert(r) for r in replies[n:]],
        )

    def applied(self, topic: str, partitions: Sequence[int]) -> dict[int, int | None]:
        """The next offset Redis holds per partition (None: nothing known)."""
        if not partitions:
            return {}
        try:
            values = self._client.hmget(
                fence_key(self._prefix, topic), [f"{p}:o" for p in partitions]
            )
        except redis.RedisError as exc:
            raise StateError(f"reading the partition fences of {topic} failed: {exc}") from exc
        return {p: None if v is None else int(v) for p, v in zip(partitions, values, strict=True)}

    def clear(self, topic: str) -> None:
        """Forget every partition's next offset (not the epochs): ``crmrisk state rebuild
        --force`` and tests; the next owner rebuilds from the topic."""
        try:
            key = fence_key(self._prefix, topic)
            offsets = [f for f in self._client.hkeys(key) if f.endswith(b":o")]
            if offsets:
                self._client.hdel(key, *offsets)
        except redis.RedisError as exc:
            raise StateError(f"clearing the partition fences of {topic} failed: {exc}") from exc

    def _run(self, calls: list[list], wait: bool = False) -> list:
        for attempt in (1, 2):
            try:
                return round_trip(
                    self._client,
                    [["EVALSHA", self._sha, *c] for c in calls],
                    wait_replicas=self.wait_replicas if wait else 0,
                    wait_timeout_ms=self.wait_timeout_ms,
                )
            except redis.exceptions.NoScriptError:
                if attempt == 2:
                    raise StateError("partition_fence.lua vanished twice") from None
                try:  # Redis restarted or SCRIPT FLUSH
                    self._sha = self._client.script_load(_SCRIPT)
                except redis.RedisError as exc:
                    raise StateError(f"loading partition_fence.lua failed: {exc}") from exc
            except redis.RedisError as exc:
                raise StateError(f"partition state call failed: {exc}") from exc
        raise AssertionError("unreachable")


def _refusals(reply: list) -> list[Refusal]:
    out = []
    for i in range(0, len(reply), 3):
        p, reason, applied = reply[i : i + 3]
        out.append(
            Refusal(
                int(p),
                reason.decode() if isinstance(reason, bytes) else reason,
                int(applied) if applied not in (b"", "") else None,
            )
        )
    return out
