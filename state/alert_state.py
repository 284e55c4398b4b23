"""Per customer and domain: is the alert armed, and when did it last fire (for the cool-down)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import redis

from state.errors import StateError
from state.pipeline import round_trip

__all__ = ["AlertState", "AlertStateStore"]


@dataclass(frozen=True, slots=True)
class AlertState:
    """``armed`` False after an alert until the score falls below threshold - hysteresis."""

    armed: bool = True
    last_alert_s: float | None = None  # epoch seconds of the last alert


class AlertStateStore:
    """One small hash per customer and domain; the policy deciding on it lives in ``stream``.

    Keys are customer ids on the Kafka side, so one worker owns a customer at a time and a
    read-decide-write per batch is race free.
    """

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        ttl_s: int,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 1000,
    ) -> None:
        if ttl_s < 1:
            raise ValueError(f"ttl_s must be >= 1, got {ttl_s}")
        self._client = client
        self._prefix = prefix
        self.ttl_s = ttl_s
        self.wait_replicas = wait_replicas  # as CustomerSequenceStore: WAIT after each write
        self.wait_timeout_ms = wait_timeout_ms

    def _key(self, customer_id: str, domain: str) -> str:
        return f"{self._prefix}:alert:{domain}:{{{customer_id}}}"

    def read(self, customer_id: str, domain: str) -> AlertState:
        return self.read_many([(customer_id, domain)])[0]

    def read_many(self, customers: Sequence[tuple[str, str]]) -> list[AlertState]:
        """States of many customers in one pipeline; unknown customers are armed."""
        commands = [["HMGET", self._key(c, d), "armed", "last"] for c, d in customers]
        try:
            replies = round_trip(self._client, commands)
        except redis.RedisError as exc:
            raise StateError(f"reading {len(customers)} alert states failed: {exc}") from exc
        return [
            AlertState(
                armed=armed is None or armed == b"1",
                last_alert_s=None if last is None else float(last),
            )
            for armed, last in replies
        ]

    def write(self, customer_id: str, domain: str, state: AlertState) -> None:
        self.write_many([(customer_id, domain, state)])

    def write_many(self, items: Sequence[tuple[str, str, AlertState]]) -> None:
        if not items:
            return
        commands: list[list] = []
        for customer_id, domain, state in items:
            key = self._key(customer_id, domain)
            fields = ["armed", "1" if state.armed else "0"]
            if state.last_alert_s is not None:
                fields += ["last", repr(state.last_alert_s)]
            commands += [["HSET", key, *fields], ["EXPIRE", key, self.ttl_s]]
        try:
            round_trip(
                self._client,
                commands,
                wait_replicas=self.wait_replicas,
                wait_timeout_ms=self.wait_timeout_ms,
            )
        except redis.RedisError as exc:
            raise StateError(f"writing {len(items)} alert states failed: {exc}") from exc
