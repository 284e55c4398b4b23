"""Which input partitions the state in Redis is complete for: how a worker sees that Redis lost it.

Redis is a cache of ``crm.events``: if it restarts empty (no persistence, a new node, a
``FLUSHALL``), every window is gone but the consumer group's offsets are not, and scoring would
silently go on with truncated histories. Each (topic, partition) whose state is complete carries
a mark, set once the state was built (a fresh partition, or a rebuild from the topic); a mark
that is missing before a batch is processed means "rebuild this partition first". The marks
live in one hash per topic (``{prefix}:marks:{topic}``, one cluster slot), so the check is one
HMGET per batch, and they vanish with the data they vouch for.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

import redis

from state.errors import StateError

__all__ = ["PartitionMarks"]


class PartitionMarks:
    """Marks of complete state per input partition, in Redis.

    Parameters
    ----------
    client
        A ``redis.Redis`` (or cluster) client.
    prefix
        Key prefix of the deployment (``Settings.redis.key_prefix``).
    """

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._client = client
        self._prefix = prefix

    def _key(self, topic: str) -> str:
        return f"{self._prefix}:marks:{{{topic}}}"

    def missing(self, topic: str, partitions: Sequence[int]) -> list[int]:
        """The partitions among ``partitions`` without a mark (their state is not known whole)."""
        if not partitions:
            return []
        try:
            values = self._client.hmget(self._key(topic), [str(p) for p in partitions])
        except redis.RedisError as exc:
            raise StateError(f"reading the state marks of {topic} failed: {exc}") from exc
        return [p for p, value in zip(partitions, values, strict=True) if value is None]

    def mark(self, topic: str, partition: int, rebuilt_events: int, up_to: int) -> None:
        """Vouch that ``partition``'s state is complete up to offset ``up_to`` (exclusive)."""
        note = json.dumps({"at": time.time(), "rebuilt_events": rebuilt_events, "up_to": up_to})
        try:
            self._client.hset(self._key(topic), str(partition), note)
        except redis.RedisError as exc:
            raise StateError(
                f"writing the state mark of {topic}/{partition} failed: {exc}"
            ) from exc

    def clear(self, topic: str) -> None:
        """Forget every mark of ``topic`` (``crmrisk state rebuild --force``, tests)."""
        try:
            self._client.delete(self._key(topic))
        except redis.RedisError as exc:
            raise StateError(f"clearing the state marks of {topic} failed: {exc}") from exc
