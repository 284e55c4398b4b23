"""Pure helpers shared by the stream and its offline reference: event order and the window.

The Redis script (``state/customer_sequence.lua``) must agree with ``window``: tests fold events
through Redis one at a time and compare with ``window`` over the full history.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from stream.events import CustomerEvent

__all__ = ["event_time_ms", "window"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def event_time_ms(event: CustomerEvent) -> int:
    """Event time as whole milliseconds since the epoch (exact integer arithmetic).

    >>> from stream.events import parse_event
    >>> event_time_ms(parse_event(b'{"event_id": "e", "customer_id": "c", "domain": "credit",'
    ...     b' "kind": "k", "event_time": "1970-01-01T00:00:01.0019Z"}'))
    1001
    """
    return (event.event_time - _EPOCH) // _MS


def window(events: Iterable[CustomerEvent], size: int) -> list[CustomerEvent]:
    """The latest ``size`` non-profile events, oldest first, ties by event id, ids deduplicated.

    The first delivery of an event id wins, as in the store.

    >>> from stream.events import parse_event
    >>> def ev(i, t):
    ...     return parse_event(f'{{"event_id": "{i}", "customer_id": "c", "domain": "d",'
    ...         f' "kind": "k", "event_time": "2024-01-0{t}T00:00:00Z"}}')
    >>> [e.event_id for e in window([ev("b", 3), ev("a", 1), ev("c", 2), ev("a", 1)], 2)]
    ['c', 'b']
    """
    first: dict[str, CustomerEvent] = {}
    for event in events:
        if event.kind != "profile":
            first.setdefault(event.event_id, event)
    ordered = sorted(first.values(), key=lambda e: (event_time_ms(e), e.event_id.encode()))
    return ordered[-size:] if size else []
