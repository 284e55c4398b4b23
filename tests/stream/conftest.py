"""Helpers shared by the stream tests."""

from __future__ import annotations

import json


def raw_event(event_id, customer="c1", day=1, kind="bill", **fields) -> bytes:
    """An inbound credit event as the broker delivers it (``fields`` default: amount = day)."""
    return json.dumps(
        {
            "event_id": event_id,
            "customer_id": customer,
            "event_time": f"2024-01-{day:02d}T00:00:00Z",
            "domain": "credit",
            "kind": kind,
            "fields": fields or {"amount": day},
        }
    ).encode()
