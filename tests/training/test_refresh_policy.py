"""When a refresh is due: label count, timer, drift, and the minimum of new labels."""

from crmrisk.training.refresh_policy import RefreshPolicy


def test_policy__labels_timer_drift_and_minimum():
    policy = RefreshPolicy(every_s=60, every_labels=100, min_labels=10)
    assert policy.due(0, 100).startswith("labels")
    assert policy.due(61, 50).startswith("timer")
    assert policy.due(1, 50, drifted=True) == "drift above threshold"
    assert policy.due(1, 50) is None
    assert policy.due(1_000, 9, drifted=True) is None  # too few labels, whatever the trigger
