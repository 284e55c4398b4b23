"""Who owns a partition's state in Redis, and how far it is applied: the fence of every write.

A worker keeps the state of its partitions' customers in memory and writes the changed ones to
Redis once per batch. Kafka moves partitions between workers (rebalances), and a worker that was
paused past its session timeout (a zombie) may still write after another took its partitions
over. Each (topic, partition) therefore has a small hash, its fence:

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

On one Redis a batch's write is two round trips, not per event: the fences are read under
``WATCH``, then every state key and the new offsets are written in one ``MULTI``/``EXEC``,
which a claim landing in between (a new owner) aborts. The values are plain ``SET``s: sent
through a script instead, each ~1.5 KB window cost Redis about three times as much CPU
(``benchmarks/hot_path.py``). On a Redis Cluster state keys live on many slots: each slot's
keys are one script call, guarded per key (a value carries its writer's partition and epoch and
never replaces a newer owner's), then each fence is one script call on its own slot
(``partition_fence.lua``); claims are a script call on either.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources

import hiredis
import redis

from crmrisk.state.errors import StateError
from crmrisk.state.keys import alert_key, fence_key, score_key, window_key
from crmrisk.state.pipeline import is_cluster, round_trip, slot_of
from crmrisk.state.records import AlertRecord, WindowRecord, unpack_alert, unpack_window

__all__ = ["Claim", "PartitionFence", "PartitionWrite", "Refusal"]

_SCRIPT = resources.files("crmrisk.state").joinpath("partition_fence.lua").read_text()


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
        ``generation`` claimed it already (this worker lost it in a rebalance it missed);
        ``generation`` None for a tool outside the consumer group (``crmrisk state rebuild``)."""
        key = fence_key(self._prefix, topic, partition)
        gen = "" if generation is None else generation
        epoch, applied = self._run([[1, key, "claim", gen]])[0]
        return Claim(int(epoch), None if applied is None else int(applied))

    def write(self, topic: str, writes: Sequence[PartitionWrite]) -> list[Refusal]:
        """Write the partitions' state where their fences pass; returns the refused ones."""
        if not writes:
            return []
        if self._cluster:
            return self._write_cluster(topic, writes)
        for _ in range(8):
            refusals = self._write_watched(topic, writes)
            if refusals is not None:
                return refusals
        raise StateError(f"the fences of {topic} kept changing during a write")

    def _write_watched(self, topic: str, writes: Sequence[PartitionWrite]) -> list[Refusal] | None:
        """One Redis: check the fences under WATCH, then write in MULTI/EXEC, so a claim that
        lands in between (a new owner) aborts the write. Plain SETs, no script per key: the
        state's values never pass through Lua. None when a fence changed meanwhile: retry."""
        fences = [fence_key(self._prefix, topic, w.partition) for w in writes]
        pool = self._client.connection_pool
        connection = pool.get_connection()
        try:
            check = [("WATCH", *fences), *(("HMGET", key, "e", "o") for key in fences)]
            replies = _exchange(connection, check)
            refusals, passing = [], []
            for w, (epoch, applied) in zip(writes, replies[1:], strict=True):
                reason = _verdict(w, epoch, applied)
                if reason is None:
                    passing.append(w)
                else:
                    refusals.append(Refusal(w.partition, reason, _int(applied)))
            if not passing:
                _exchange(connection, [("UNWATCH",)])
                return refusals
            keys, values = self._state(passing, guard=False)
            commands: list[tuple] = [("MULTI",)]
            commands += [
                ("SET", k, v[4], "EX", self.ttl_s) for k, v in zip(keys, values, strict=True)
            ]
            commands += [
                ("HSET", fence_key(self._prefix, topic, w.partition), "o", w.new) for w in passing
            ]
            commands.append(("EXEC",))
            if self.wait_replicas:
                commands.append(("WAIT", self.wait_replicas, self.wait_timeout_ms))
            replies = _exchange(connection, commands)
            executed = replies[len(commands) - (2 if self.wait_replicas else 1)]
            if executed is None:
                return None
            if self.wait_replicas and int(replies[-1]) < self.wait_replicas:
                raise redis.TimeoutError(
                    f"{replies[-1]} of {self.wait_replicas} replica(s) acknowledged a state write"
                )
            return refusals
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            connection.disconnect()
            raise StateError(f"partition state write failed: {exc}") from exc
        except redis.RedisError as exc:
            connection.disconnect()  # unknown transaction state: never reuse this connection
            raise StateError(f"partition state write failed: {exc}") from exc
        finally:
            pool.release(connection)

    def _write_cluster(self, topic: str, writes: Sequence[PartitionWrite]) -> list[Refusal]:
        """A Redis Cluster: each slot's state keys in one script call, guarded per key (a value
        never replaces a newer owner's), then each partition's fence on its own slot."""
        keys, values = self._state(writes, guard=True)
        groups: dict[int, list[int]] = {}
        for i, key in enumerate(keys):
            groups.setdefault(slot_of(key), []).append(i)
        calls = []
        for rows in groups.values():
            args = [a for i in rows for a in (0, *values[i][1:])]
            calls.append([len(rows), *(keys[i] for i in rows), "write", self.ttl_s, 0, *args])
        self._run(calls, wait=True)
        fences = [
            [1, fence_key(self._prefix, topic, w.partition), "write", self.ttl_s, 1,
             w.epoch, "" if w.expected is None else w.expected, w.new]
            for w in writes
        ]  # fmt: skip
        refusals = []
        for w, reply in zip(writes, self._run(fences, wait=True), strict=True):
            for _, reason, applied in (reply[i : i + 3] for i in range(0, len(reply), 3)):
                reason = reason.decode() if isinstance(reason, bytes) else reason
                refusals.append(Refusal(w.partition, reason, _int(applied or None)))
        return refusals

    def _state(self, writes: Sequence[PartitionWrite], guard: bool) -> tuple[list[str], list]:
        """Keys of the writes' state, and per key (fence index, partition, epoch, guarded,
        value); only window and alert records carry a guard header."""
        keys: list[str] = []
        values: list = []
        p = self._prefix
        for w in writes:
            for key_of, items, guarded in (
                (window_key, w.windows, int(guard)),
                (alert_key, w.alerts, int(guard)),
                (score_key, w.scores, 0),
            ):
                for domain, customer, value in items:
                    keys.append(key_of(p, domain, customer))
                    values.append((0, w.partition, w.epoch, guarded, value))
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
        commands = [["HGET", fence_key(self._prefix, topic, p), "o"] for p in partitions]
        try:
            values = round_trip(self._client, commands)
        except redis.RedisError as exc:
            raise StateError(f"reading the partition fences of {topic} failed: {exc}") from exc
        return {p: _int(v) for p, v in zip(partitions, values, strict=True)}

    def clear(self, topic: str, partitions: Sequence[int]) -> None:
        """Forget the partitions' next offsets (not their epochs): ``crmrisk state rebuild
        --force`` and tests; their next owner rebuilds them from the topic."""
        commands = [["HDEL", fence_key(self._prefix, topic, p), "o"] for p in partitions]
        try:
            round_trip(self._client, commands)
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


def _int(value: object) -> int | None:
    return None if value is None or value in (b"", "") else int(value)


def _verdict(w: PartitionWrite, epoch: bytes | None, applied: bytes | None) -> str | None:
    """None when ``w``'s fence passes, else why not (as the script decides on a cluster)."""
    stored_epoch = _int(epoch)
    if stored_epoch is None or stored_epoch < w.epoch:
        return "lost"  # the fence is gone or older than the claim: Redis lost data
    if stored_epoch > w.epoch:
        return "fenced"
    stored = _int(applied)
    if stored == w.new or stored == w.expected:
        return None
    return "lost"


def _exchange(connection, commands: Sequence[Sequence[object]]) -> list:
    """Send ``commands`` at once on ``connection`` and read every reply (errors raised after
    all replies are read, so the connection stays in step)."""
    connection.send_packed_command([b"".join(hiredis.pack_command(tuple(c)) for c in commands)])
    replies, error = [], None
    for _ in commands:
        try:
            replies.append(connection.read_response())
        except redis.exceptions.ResponseError as exc:
            error = error or exc
            replies.append(exc)
    if error is not None:
        raise error
    return replies
