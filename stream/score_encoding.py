"""The ``RiskScore`` wire bytes, written directly: one per scored event on the hot path.

Building a pydantic model per score (even with ``model_construct``) cost more than the rest of
the scoring step; this writes the same JSON document with orjson (a few times faster than
``json.dumps`` for these small documents). Tests parse the bytes back with
``RiskScore.model_validate_json``, so the contract stays the judge.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import orjson

from crmrisk.stream.events import SCHEMA_VERSION, EventRef

__all__ = ["TopEvent", "iso_ms", "score_bytes", "top_event_refs"]

TopEvent = tuple[str, int, str, float]  # (event id, event time ms, kind, attention weight)


@functools.lru_cache(maxsize=65536)
def iso_ms(ms: int) -> str:
    """Milliseconds since the epoch as ISO 8601 UTC with a 'Z' (cached: event times repeat).

    >>> iso_ms(1114819200000), iso_ms(1114819200123)
    ('2005-04-30T00:00:00Z', '2005-04-30T00:00:00.123000Z')
    """
    text = datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat()
    return text.removesuffix("+00:00") + "Z"


def score_bytes(
    *,
    customer_id: str,
    domain: str,
    event_id: str,
    event_time_ms: int,
    probability: float,
    quantiles: Mapping[str, float] | None,
    model_version: str,
    scored_at: str,
    top_events: Sequence[TopEvent],
    exposure: float | None = None,
) -> bytes:
    """A ``RiskScore`` as ``RiskScore.to_bytes`` would write it (``scored_at`` pre-formatted)."""
    document = {
        "schema_version": SCHEMA_VERSION,
        "customer_id": customer_id,
        "domain": domain,
        "event_id": event_id,
        "event_time": iso_ms(event_time_ms),
        "probability": probability,
        "quantiles": None if quantiles is None else dict(quantiles),
        "model_version": model_version,
        "scored_at": scored_at,
        "top_events": [
            {"event_id": i, "event_time": iso_ms(t), "kind": k, "weight": w}
            for i, t, k, w in top_events
        ],
        "reasons": [],  # reason codes are computed for alerts only (and on demand)
        "exposure": exposure,
    }
    return orjson.dumps(document)


def top_event_refs(top_events: Sequence[TopEvent]) -> list[EventRef]:
    """The same explanation as validated ``EventRef`` models (for alerts)."""
    return [
        EventRef(event_id=i, event_time=datetime.fromtimestamp(t / 1000, tz=UTC), kind=k, weight=w)
        for i, t, k, w in top_events
    ]
