"""The latest score of each customer and domain, as the serialised ``RiskScore`` bytes."""

from __future__ import annotations

from collections.abc import Sequence

import redis

from crmrisk.state.errors import StateError
from crmrisk.state.keys import score_key
from crmrisk.state.pipeline import round_trip

__all__ = ["LatestScoreStore"]


class LatestScoreStore:
    """One string key per customer and domain, overwritten by every score, expiring with TTL.

    The store keeps opaque bytes: ``state`` does not know the wire schema, the caller does.
    """

    def __init__(self, client: redis.Redis, prefix: str, ttl_s: int) -> None:
        if ttl_s < 1:
            raise ValueError(f"ttl_s must be >= 1, got {ttl_s}")
        self._client = client
        self._prefix = prefix
        self.ttl_s = ttl_s

    def _key(self, customer_id: str, domain: str) -> str:
        return score_key(self._prefix, domain, customer_id)

    def write(self, customer_id: str, domain: str, payload: bytes) -> None:
        self.write_many([(customer_id, domain, payload)])

    def write_many(self, items: Sequence[tuple[str, str, bytes]]) -> None:
        """Overwrite many customers' latest scores in one pipeline (last item per key wins)."""
        if not items:
            return
        latest = {self._key(c, d): payload for c, d, payload in items}  # last write per key wins
        try:
            round_trip(self._client, [["SET", k, v, "EX", self.ttl_s] for k, v in latest.items()])
        except redis.RedisError as exc:
            raise StateError(f"writing {len(items)} latest scores failed: {exc}") from exc

    def read(self, customer_id: str, domain: str) -> bytes | None:
        return self.read_many([(customer_id, domain)])[0]

    def read_many(self, customers: Sequence[tuple[str, str]]) -> list[bytes | None]:
        if not customers:
            return []
        try:  # GETs, not MGET: the keys may live in many cluster slots
            return round_trip(self._client, [["GET", self._key(c, d)] for c, d in customers])
        except redis.RedisError as exc:
            raise StateError(f"reading {len(customers)} latest scores failed: {exc}") from exc
