"""ScoreRequest's topic encoding round-trips exactly."""

import numpy as np
import pytest

from crmrisk.state import CustomerSequence
from crmrisk.stream.requests import ScoreRequest


def _request(profile=True, length=3):
    rng = np.random.default_rng(0)
    return ScoreRequest(
        customer_id="c1",
        domain="credit",
        event_id="e3",
        event_time_ms=3000,
        produced_ms=123,
        sequence=CustomerSequence(
            event_ids=[f"e{i}" for i in range(length)],
            event_times_ms=np.arange(length, dtype=np.int64) * 1000,
            kinds=["bill"] * length,
            events=rng.normal(size=(length, 5)).astype(np.float32),
            profile=rng.normal(size=4).astype(np.float32) if profile else None,
            exposure=5e4 if profile else None,
        ),
    )


@pytest.mark.parametrize("profile", [True, False])
def test_from_bytes__inverts_to_bytes(profile):
    request = _request(profile)
    back = ScoreRequest.from_bytes(request.to_bytes())
    assert (back.customer_id, back.event_id, back.produced_ms) == ("c1", "e3", 123)
    assert back.sequence.event_ids == request.sequence.event_ids
    np.testing.assert_array_equal(back.sequence.events, request.sequence.events)
    np.testing.assert_array_equal(back.sequence.event_times_ms, request.sequence.event_times_ms)
    if profile:
        np.testing.assert_array_equal(back.sequence.profile, request.sequence.profile)
        assert back.sequence.exposure == 5e4
    else:
        assert back.sequence.profile is None


def test_from_bytes__rejects_a_truncated_body():
    with pytest.raises(ValueError, match="floats"):
        ScoreRequest.from_bytes(_request().to_bytes()[:-4])
