"""The live-feed order of events: time, then a profile first, then event id."""

from datetime import UTC, datetime, timedelta

from crmrisk.stream.event_order import in_event_time_order
from crmrisk.stream.events import CustomerEvent

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _event(event_id: str, minutes: int, kind: str = "txn") -> CustomerEvent:
    return CustomerEvent(
        event_id=event_id,
        customer_id="c1",
        event_time=T0 + timedelta(minutes=minutes),
        domain="credit",
        kind=kind,
    )


def test_in_event_time_order__time_then_profile_first_then_id():
    events = [_event("b", 0), _event("late", 5), _event("p", 0, "profile"), _event("a", 0)]
    assert [e.event_id for e in in_event_time_order(events)] == ["p", "a", "b", "late"]
