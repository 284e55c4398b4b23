"""The hand-written RiskScore bytes are what the contract parses back."""

from datetime import UTC, datetime

import pytest

from crmrisk.stream.events import EventRef, RiskScore
from crmrisk.stream.score_encoding import iso_ms, score_bytes, top_event_refs

TOP = [("e2", 1114819200123, "statement", 0.7), ("e1", 1112227200000, "statement", 0.3)]


@pytest.mark.parametrize(
    ("quantiles", "exposure"), [(None, None), ({"q10": 1.5, "q50": 20.0, "q90": 1e6}, 2500.0)]
)
def test_score_bytes__parse_back_as_the_same_risk_score(quantiles, exposure):
    raw = score_bytes(
        customer_id="c-ü",
        domain="credit",
        event_id="e2",
        event_time_ms=1114819200123,
        probability=0.123456789,
        quantiles=quantiles,
        model_version="v1",
        scored_at=iso_ms(1_700_000_000_000),
        top_events=TOP,
        exposure=exposure,
    )
    score = RiskScore.model_validate_json(raw)
    expected = RiskScore(
        customer_id="c-ü",
        domain="credit",
        event_id="e2",
        event_time=datetime(2005, 4, 30, 0, 0, 0, 123000, tzinfo=UTC),
        probability=0.123456789,
        quantiles=quantiles,
        model_version="v1",
        scored_at=datetime.fromtimestamp(1_700_000_000, tz=UTC),
        top_events=top_event_refs(TOP),
        exposure=exposure,
    )
    assert score == expected
    assert raw == expected.to_bytes()


def test_top_event_refs__keep_order_and_values():
    refs = top_event_refs(TOP)
    assert refs[0] == EventRef(
        event_id="e2",
        event_time=datetime(2005, 4, 30, 0, 0, 0, 123000, tzinfo=UTC),
        kind="statement",
        weight=0.7,
    )
    assert [r.event_id for r in refs] == ["e2", "e1"]
