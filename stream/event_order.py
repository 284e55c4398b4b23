"""The order a live feed produces events in: event time, a profile first, then event id.

Kafka-free on purpose: ``training.datasets.feed`` orders a dataset's events with it, and
training imports no Kafka client.
"""

from __future__ import annotations

from collections.abc import Iterable

from crmrisk.stream.events import CustomerEvent
from crmrisk.stream.transform import event_time_ms

__all__ = ["in_event_time_order"]


def in_event_time_order(events: Iterable[CustomerEvent]) -> list[CustomerEvent]:
    """Sorted by event time, a profile before other events at the same time, then event id:
    the order a live feed would have produced."""
    return sorted(events, key=lambda e: (event_time_ms(e), e.kind != "profile", e.event_id))
