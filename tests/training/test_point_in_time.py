"""Point-in-time examples: what the model saw at ``as_of``, never anything later."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from crmrisk.stream.events import CustomerEvent, Outcome
from crmrisk.stream.transform import window as serving_window
from crmrisk.training.point_in_time import BuildStats, EventLog, build_examples

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _event(event_id: str, minutes: float, customer: str = "c1", kind: str = "txn", **fields):
    return CustomerEvent(
        event_id=event_id,
        customer_id=customer,
        event_time=T0 + timedelta(minutes=minutes),
        domain="credit",
        kind=kind,
        fields=fields or {"amount": minutes},
    )


def _outcome(minutes: float, customer: str = "c1", label: int = 1) -> Outcome:
    return Outcome(
        customer_id=customer,
        domain="credit",
        as_of=T0 + timedelta(minutes=minutes),
        observed_at=T0 + timedelta(days=30),
        label=label,
    )


def test_build__excludes_events_after_as_of_even_when_they_arrived_first():
    log = EventLog(history_limit=100)
    # The future event is logged before the outcome shows up: a builder reading "the latest
    # window" (what Redis holds now) would include it.
    log.add_many([_event("e1", 1), _event("e2", 2), _event("future", 11)])
    (example,) = build_examples(log, [_outcome(10)], window=8)
    assert [e.event_id for e in example.events] == ["e1", "e2"]
    assert all(e.event_time <= example.as_of for e in example.events)


def test_build__includes_event_exactly_at_as_of_and_excludes_one_microsecond_later():
    log = EventLog(history_limit=100)
    at = _event("at", 10)
    later = at.model_copy(
        update={"event_id": "later", "event_time": at.event_time + timedelta(microseconds=1)}
    )
    log.add_many([later, at, _event("e0", 0)])
    (example,) = build_examples(log, [_outcome(10)], window=8)
    assert [e.event_id for e in example.events] == ["e0", "at"]


def test_build__late_arriving_past_event_is_placed_by_event_time():
    log = EventLog(history_limit=100)
    log.add_many([_event("e3", 3), _event("e1", 1), _event("e2", 2)])
    (example,) = build_examples(log, [_outcome(5)], window=8)
    assert [e.event_id for e in example.events] == ["e1", "e2", "e3"]


def test_build__keeps_latest_window_events_before_as_of():
    log = EventLog(history_limit=100)
    log.add_many([_event(f"e{i}", i) for i in range(10)])
    (example,) = build_examples(log, [_outcome(6.5)], window=3)
    assert [e.event_id for e in example.events] == ["e4", "e5", "e6"]


def test_build__profile_is_the_latest_one_at_or_before_as_of():
    log = EventLog(history_limit=100)
    log.add(_event("p1", 0, kind="profile", limit=100))
    log.add(_event("p2", 20, kind="profile", limit=999))
    log.add(_event("e1", 1))
    (example,) = build_examples(log, [_outcome(10)], window=4)
    assert example.profile == {"limit": 100}
    assert [e.event_id for e in example.events] == ["e1"]


def test_add__duplicate_event_id_is_stored_once():
    log = EventLog(history_limit=100)
    assert log.add(_event("e1", 1))
    assert not log.add(_event("e1", 1))
    (example,) = build_examples(log, [_outcome(5)], window=8)
    assert len(example.events) == 1


def test_build__counts_outcomes_without_prior_events():
    log = EventLog(history_limit=100)
    log.add(_event("e1", 50))
    stats = BuildStats()
    assert build_examples(log, [_outcome(10), _outcome(5, customer="nobody")], 8, stats) == []
    assert stats.as_dict() == {"built": 0, "no_events": 2, "truncated": 0}


def test_build__skips_examples_the_history_cap_has_cut_short():
    log = EventLog(history_limit=3)
    log.add_many([_event(f"e{i}", i) for i in range(6)])  # e0..e2 evicted
    stats = BuildStats()
    # At minute 3.5 the served window (4 events: e0..e3) is no longer reconstructible.
    assert build_examples(log, [_outcome(3.5)], window=4, stats=stats) == []
    assert stats.truncated == 1
    # At minute 5 the latest 3 events are all still there.
    (example,) = build_examples(log, [_outcome(5)], window=3)
    assert [e.event_id for e in example.events] == ["e3", "e4", "e5"]


def test_build__matches_serving_window_over_history_up_to_as_of():
    """Reference check: the log agrees with the serving window over the events up to as_of."""
    rng = np.random.default_rng(7)
    events = [
        _event(f"e{i:03d}", float(rng.integers(0, 200)), customer=f"c{i % 5}") for i in range(300)
    ]
    events += events[:40]  # redeliveries
    order = rng.permutation(len(events))
    log = EventLog(history_limit=1000)
    log.add_many(events[i] for i in order)
    for customer in [f"c{k}" for k in range(5)]:
        for minute in (0, 37.5, 120, 199, 400):
            (example,) = build_examples(log, [_outcome(minute, customer)], window=6) or [None]
            expected = serving_window(
                [
                    e
                    for e in events
                    if e.customer_id == customer and e.event_time <= T0 + timedelta(minutes=minute)
                ],
                6,
            )
            got = [] if example is None else [e.event_id for e in example.events]
            assert got == [e.event_id for e in expected]


def test_event_log__rejects_a_non_positive_limit():
    with pytest.raises(ValueError):
        EventLog(history_limit=0)


def test_encode_examples__rows_equal_the_serving_encoder_per_event():
    from crmrisk.model.features import FeatureEncoder, FeatureSpec, FieldRole
    from crmrisk.training.point_in_time import encode_examples

    spec = FeatureSpec(
        "credit",
        (FieldRole("amount", "numeric", "none"),),
        (FieldRole("limit", "numeric", "none"),),
    )
    log = EventLog(history_limit=100)
    log.add_many([_event(f"a{i}", i, customer="a") for i in range(4)])
    log.add_many([_event(f"b{i}", i, customer="b") for i in range(2)])
    log.add(_event("ap", 0, customer="a", kind="profile", limit=5.0))  # b has no profile
    encoder = FeatureEncoder.fit(
        spec,
        ["txn"] * 6,
        [{"amount": float(i)} for i in range(6)],
        [{"limit": 1.0}, {"limit": 9.0}],
    )
    examples = build_examples(log, [_outcome(10, "a"), _outcome(10, "b", label=0)], window=3)
    arrays = encode_examples(examples, encoder, window=3)
    assert arrays.events.shape == (2, 3, encoder.event_dim)
    assert arrays.mask.tolist() == [[True, True, True], [True, True, False]]
    for i, example in enumerate(examples):
        for t, event in enumerate(example.events):
            assert np.array_equal(
                arrays.events[i, t], encoder.encode_event(event.kind, event.fields)
            )
    assert not arrays.events[1, 2].any()  # padding
    assert np.array_equal(arrays.profile[0], encoder.encode_profile({"limit": 5.0}))
    assert not arrays.profile[1].any()  # no profile by as_of: zeros, as the scorer pads it
    assert arrays.label.tolist() == [1, 0] and arrays.customer_ids == ["a", "b"]
