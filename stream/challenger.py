"""A challenger model on trial beside the champion, as the scoring step uses it.

``shadow``: every window the champion scores is scored again by the challenger, in the same
batch; its scores go to ``risk.scores.shadow`` only (never alerts, never state), so the champion's
output and commits are exactly what they would be without it. ``canary``: customers whose id
hashes into the first ``percent`` of 10,000 buckets are scored (and alerted on) by the
challenger instead; the hash is stable across workers and restarts, so a customer stays on one
side. A challenger that fails to score leaves those rows to the champion (counted, never lost).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import orjson

from crmrisk.stream.score_encoding import iso_ms
from crmrisk.stream.scorer import Scorer

__all__ = ["BUCKETS", "Challenger", "bucket_of", "canary_rows", "shadow_bytes"]

BUCKETS = 10_000


def bucket_of(customer_id: str) -> int:
    """The customer's stable bucket in [0, BUCKETS) (CRC-32 of the UTF-8 id).

    >>> bucket_of("c-1"), bucket_of("c-1") == bucket_of("c-1")
    (6798, True)
    """
    return zlib.crc32(customer_id.encode()) % BUCKETS


def canary_rows(customers: Sequence[str], percent: float) -> np.ndarray:
    """Which rows the canary serves: a bucket below ``percent`` of ``BUCKETS``."""
    limit = percent * BUCKETS / 100.0
    return np.fromiter((bucket_of(c) < limit for c in customers), bool, len(customers))


@dataclass(frozen=True)
class Challenger:
    """The challenger of one domain: how it is tried (``mode``) and what scores with it."""

    mode: Literal["shadow", "canary"]
    scorer: Scorer
    percent: float = 0.0  # canary only


def shadow_bytes(
    *,
    customer_id: str,
    domain: str,
    event_id: str,
    event_time_ms: int,
    probability: float,
    model_version: str,
    champion_version: str,
    champion_probability: float,
    would_alert: bool,
    scored_at: str,
    shadow_us: float,
    champion_us: float,
) -> bytes:
    """A ``stream.events.ShadowScore`` as its ``to_bytes`` would write it (hot path: orjson)."""
    return orjson.dumps(
        {
            "schema_version": 1,
            "customer_id": customer_id,
            "domain": domain,
            "event_id": event_id,
            "event_time": iso_ms(event_time_ms),
            "probability": probability,
            "model_version": model_version,
            "champion_version": champion_version,
            "champion_probability": champion_probability,
            "would_alert": would_alert,
            "scored_at": scored_at,
            "shadow_us": shadow_us,
            "champion_us": champion_us,
        }
    )
