"""The window rule over wire events: event order and the window, for the stream and its tests.

The rule itself is ``state.window_rule`` (written once, shared with training); this module
applies it to ``CustomerEvent`` objects.
"""

from __future__ import annotations

from collections.abc import Iterable

from crmrisk.state.window_rule import time_ms, window_positions
from crmrisk.stream.events import CustomerEvent

__all__ = ["event_time_ms", "window"]


def event_time_ms(event: CustomerEvent) -> int:
    """Event time as whole milliseconds since the epoch (exact integer arithmetic).

    >>> from stream.events import parse_event
    >>> event_time_ms(parse_event(b'{"event_id": "e", "customer_id": "c", "domain": "credit",'
    ...     b' "kind": "k", "event_time": "1970-01-01T00:00:01.0019Z"}'))
    1001
    """
    return time_ms(event.event_time)


def window(events: Iterable[CustomerEvent], size: int) -> list[CustomerEvent]:
    """The latest ``size`` non-profile events, oldest first, ties by event id, ids deduplicated.

    The first delivery of an event id wins, as in the store (``state.window_rule``).

    >>> from stream.events import parse_event
    >>> def ev(i, t):
    ...     return parse_event(f'{{"event_id": "{i}", "customer_id": "c", "domain": "d",'
    ...         f' "kind": "k", "event_time": "2024-01-0{t}T00:00:00Z"}}')
    >>> [e.event_id for e in window([ev("b", 3), ev("a", 1), ev("c", 2), ev("a", 1)], 2)]
    ['c', 'b']
    """
    events = list(events)
    kept = window_positions(
        [e.event_id for e in events],
        [event_time_ms(e) for e in events],
        [e.kind == "profile" for e in events],
        size,
    )
    return [events[i] for i in kept]
