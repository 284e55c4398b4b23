"""The alert policy alone: threshold, hysteresis, cool-down."""

import pytest

from crmrisk.state import AlertState
from crmrisk.stream.alert_policy import AlertPolicy, decide

POLICY = AlertPolicy(threshold=0.5, hysteresis=0.1, cooldown_s=100)


def _run(scores):
    """Fire flags for (probability, time) pairs from a fresh state."""
    state, fired = AlertState(), []
    for probability, now in scores:
        fire, state = decide(POLICY, state, probability, now)
        fired.append(fire)
    return fired


def test_decide__fires_once_while_hovering_at_the_threshold():
    assert _run([(0.49, 0), (0.55, 1), (0.48, 2), (0.52, 3), (0.6, 500)]) == [
        False,
        True,
        False,
        False,
        False,
    ]


def test_decide__rearms_below_threshold_minus_hysteresis():
    assert _run([(0.9, 0), (0.39, 200), (0.9, 300)]) == [True, False, True]


def test_decide__cooldown_holds_back_a_rearmed_alert():
    assert _run([(0.9, 0), (0.1, 10), (0.9, 50), (0.9, 150)]) == [True, False, False, True]


def test_decide__late_event_before_the_last_alert_is_in_cooldown():
    assert _run([(0.9, 1000), (0.1, 1001), (0.9, 10)]) == [True, False, False]


@pytest.mark.parametrize(
    "kwargs",
    [{"threshold": 1.5}, {"hysteresis": -0.1}, {"cooldown_s": -1}],
)
def test_policy__rejects_bad_parameters(kwargs):
    params = {"threshold": 0.5, "hysteresis": 0.1, "cooldown_s": 1} | kwargs
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        AlertPolicy(**params)
