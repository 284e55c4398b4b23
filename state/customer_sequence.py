"""Per customer and domain: the latest W encoded events (oldest first) and the profile, in Redis.

Each append runs ``customer_sequence.lua`` (atomic, idempotent) and returns the window it left, so
the caller scores exactly the sequence it stored. A batch of appends is one script call (the
script loops over the batch: one call's overhead in Redis, not one per event); a batch of reads
is one pipeline.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence as Seq
from dataclasses import dataclass
from enum import IntEnum
from importlib import resources

import numpy as np
import redis

from state.errors import StateError
from state.pipeline import is_cluster, round_trip, slot_of

__all__ = ["Append", "AppendResult", "AppendStatus", "CustomerSequence", "CustomerSequenceStore"]

_SCRIPT = resources.files("state").joinpath("customer_sequence.lua").read_text()


class AppendStatus(IntEnum):
    APPLIED = 1
    DUPLICATE = 0  # the event id is already in the window (or is the stored profile)
    REDELIVERED = -1  # this partition offset was already applied: a replay after a crash
    OUTSIDE_WINDOW = 2  # older than every event of a full window: nothing changed
    READ = 3
    CONFLICT = 4  # the event id is stored with other content: a producer bug, nothing changed


_STATUS = {int(s): s for s in AppendStatus}  # a dict lookup: calling the enum is slow


@dataclass(frozen=True, slots=True)
class Append:
    """One encoded event to store; ``source`` = (topic, partition, offset) arms the offset guard."""

    customer_id: str
    domain: str
    event_id: str
    event_time_ms: int
    kind: str
    vector: np.ndarray  # float32 (event_dim,) or (profile_dim,) when kind == "profile"
    source: tuple[str, int, int] | None = None
    exposure: float | None = None  # amount at risk (profiles only), e.g. a credit limit
    content_hash: bytes = b""  # 8 bytes naming the event's content; b"" = unknown


@dataclass(frozen=True, slots=True)
class CustomerSequence:
    """A customer's window: ``events[t]`` is the t-th oldest event; ``profile`` None if unseen."""

    event_ids: list[str]
    event_times_ms: np.ndarray  # int64 (L,)
    kinds: list[str]
    events: np.ndarray  # float32 (L, event_dim)
    profile: np.ndarray | None  # float32 (profile_dim,)
    exposure: float | None = None  # from the latest profile, when the domain has one

    def __len__(self) -> int:
        return len(self.event_ids)


@dataclass(frozen=True, slots=True)
class AppendResult:
    status: AppendStatus
    sequence: CustomerSequence
    stored_hash: bytes | None = None  # with CONFLICT: the content hash already stored


class CustomerSequenceStore:
    """Bounded, time-ordered windows of encoded events; one class per Redis structure.

    Parameters
    ----------
    client
        A ``redis.Redis`` created with ``decode_responses=False`` (vectors are bytes).
    prefix
        Key prefix shared by every store of one deployment (``Settings.redis.key_prefix``).
    window
        Events kept per customer and domain (W).
    ttl_s
        Inactive customers expire after this many seconds.
    wait_replicas
        After each batch of appends, wait until this many replicas (of each master written)
        acknowledged it (``WAIT``), so that a failover loses no stored event; 0 = don't wait.
    wait_timeout_ms
        How long that wait may take before the batch counts as failed (and is retried).
    """

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        window: int,
        ttl_s: int,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 1000,
    ) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        if ttl_s < 1:
            raise ValueError(f"ttl_s must be >= 1, got {ttl_s}")
        self._client = client
        self._prefix = prefix
        self.window = window
        self.ttl_s = ttl_s
        self.wait_replicas = wait_replicas
        self.wait_timeout_ms = wait_timeout_ms
        self._cluster = is_cluster(client)
        # EVALSHA by the script's SHA1 (what SCRIPT LOAD would answer), loaded on the first
        # NOSCRIPT: building a store needs no Redis, so a worker can start while Redis is down.
        self._sha = hashlib.sha1(_SCRIPT.encode()).hexdigest()

    def _key(self, customer_id: str, domain: str) -> str:
        return f"{self._prefix}:seq:{domain}:{{{customer_id}}}"

    def _append_args(self, item: Append) -> list[bytes | str | int]:
        """The script's 11 per-event arguments (customer_sequence.lua, ARGV)."""
        guard, offset = ("", 0)
        if item.source is not None:
            topic, partition, offset = item.source
            guard = f"o:{topic}:{partition}"
        vector = np.ascontiguousarray(item.vector, dtype=np.float32).tobytes()
        return [
            item.event_id,
            int(item.event_time_ms),
            item.kind,
            vector,
            "1" if item.kind == "profile" else "0",
            guard,
            offset,
            self.window,
            self.ttl_s,
            "" if item.exposure is None else repr(float(item.exposure)),
            item.content_hash,
        ]

    def append(self, item: Append) -> AppendResult:
        """Store one event (idempotently) and return the window it leaves."""
        return self.append_many([item])[0]

    def append_many(self, items: Seq[Append]) -> list[AppendResult]:
        """Store a batch in one script call, in order; each result holds the window it left."""
        if not items:
            return []
        keys = [self._key(item.customer_id, item.domain) for item in items]
        groups = self._by_slot(keys)
        calls = []
        for rows in groups:
            args: list = ["batch"]
            for i in rows:
                args.extend(self._append_args(items[i]))
            calls.append([len(rows), *(keys[i] for i in rows), *args])
        replies: list = [None] * len(items)
        for rows, group_replies in zip(groups, self._run_many(calls, wait=True), strict=True):
            for i, reply in zip(rows, group_replies, strict=True):
                replies[i] = reply
        return [AppendResult(_STATUS[r[0]], _decode(r), r[7]) for r in replies]

    def _by_slot(self, keys: list[str]) -> list[list[int]]:
        """Indexes of ``keys`` per script call: all in one on a single Redis; on a cluster one
        call per hash slot (a script may only touch keys of one slot), order kept within."""
        if not self._cluster:
            return [list(range(len(keys)))]
        groups: dict[int, list[int]] = {}
        for i, key in enumerate(keys):
            groups.setdefault(slot_of(key), []).append(i)
        return list(groups.values())

    def read(self, customer_id: str, domain: str) -> CustomerSequence:
        """The customer's current window (empty when unknown or expired)."""
        return self.read_many([(customer_id, domain)])[0]

    def read_many(self, customers: Seq[tuple[str, str]]) -> list[CustomerSequence]:
        """Windows of many (customer_id, domain) pairs in one pipeline."""
        return [
            _decode(r) for r in self._run_many([[1, self._key(c, d), "read"] for c, d in customers])
        ]

    def forget(self, customer_id: str, domain: str) -> None:
        """Drop a customer's window and profile (GDPR erasure, tests)."""
        try:
            self._client.delete(self._key(customer_id, domain))
        except redis.RedisError as exc:
            raise StateError(f"deleting the sequence of {customer_id!r} failed: {exc}") from exc

    def _load_script(self) -> str:
        try:
            return self._client.script_load(_SCRIPT)
        except redis.RedisError as exc:
            raise StateError(f"loading customer_sequence.lua failed: {exc}") from exc

    def _run_many(self, calls: list[list], wait: bool = False) -> list:
        """EVALSHA each ``[numkeys, *keys, *args]`` in one round trip, retrying after a NOSCRIPT.

        ``round_trip``, not redis-py's ``Pipeline``/``Script``: their per-command wrappers cost
        more client CPU than the script costs Redis.
        """
        if not calls:
            return []
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
                    raise StateError("customer_sequence.lua vanished twice") from None
                self._sha = self._load_script()  # Redis restarted or SCRIPT FLUSH
            except redis.RedisError as exc:
                raise StateError(f"sequence pipeline of {len(calls)} calls failed: {exc}") from exc
        raise AssertionError("unreachable")


def _decode(reply: list) -> CustomerSequence:
    _, ids, times, vectors, kinds, profile, exposure = reply[:7]
    event_ids = ids.decode().split("\0")[:-1]
    length = len(event_ids)
    events = np.frombuffer(vectors, dtype=np.float32)
    return CustomerSequence(
        event_ids=event_ids,
        event_times_ms=np.frombuffer(times, dtype="<f8").astype(np.int64),
        kinds=kinds.decode().split("\0")[:-1],
        events=events.reshape(length, -1) if length else events.reshape(0, 0),
        profile=None if profile is None else np.frombuffer(profile, dtype=np.float32),
        exposure=None if exposure is None else float(exposure),
    )
