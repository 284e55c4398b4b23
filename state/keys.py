"""Redis key names of the state, in one place: the stores that read them and the fenced write
that writes them must agree. Per-customer keys carry the customer id as a hash tag, so each
lands whole on one Redis Cluster slot; a topic's partition fences share one slot."""

from __future__ import annotations

__all__ = ["alert_key", "fence_key", "score_key", "window_key"]


def window_key(prefix: str, domain: str, customer_id: str) -> str:
    return f"{prefix}:window:{domain}:{{{customer_id}}}"


def alert_key(prefix: str, domain: str, customer_id: str) -> str:
    return f"{prefix}:alertstate:{domain}:{{{customer_id}}}"


def score_key(prefix: str, domain: str, customer_id: str) -> str:
    return f"{prefix}:score:{domain}:{{{customer_id}}}"


def fence_key(prefix: str, topic: str, partition: int) -> str:
    return f"{prefix}:fence:{{{topic}:{partition}}}"
