"""PSI: zero on the same distribution, large on a shift, finite with empty bins; the monitor."""

import numpy as np
import pytest
from prometheus_client import REGISTRY

from crmrisk.training.drift import DriftMonitor, Reference, psi


def test_psi__is_near_zero_for_the_same_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(1)
    base = rng.beta(2, 5, size=10_000)
    assert psi(base, rng.beta(2, 5, size=10_000)) < 0.01
    assert psi(base, rng.beta(5, 2, size=10_000)) > 1.0


def test_psi__matches_the_formula_on_hand_made_bins():
    ref = Reference(edges=(0.5,), categories=(), expected=(0.5, 0.5))
    recent = np.array([0.1] * 8 + [0.9] * 2)
    expected = (0.8 - 0.5) * np.log(0.8 / 0.5) + (0.2 - 0.5) * np.log(0.2 / 0.5)
    assert ref.psi(recent) == pytest.approx(expected)


def test_reference__discrete_values_get_one_bin_each_and_a_bin_for_unseen():
    ref = Reference.fit(np.array([0.0] * 90 + [1.0] * 10))
    assert ref.categories == (0.0, 1.0)
    assert ref.expected == pytest.approx((0.9, 0.1, 0.0))  # the last bin: unseen values
    assert ref.psi(np.array([0.0] * 90 + [1.0] * 10)) == pytest.approx(0.0, abs=1e-12)
    flipped = ref.psi(np.array([0.0] * 10 + [1.0] * 90))
    unseen = ref.psi(np.array([2.0] * 100))
    assert flipped > 1.0 and np.isfinite(unseen) and unseen > 1.0


def test_reference__round_trips_through_a_dict():
    ref = Reference.fit(np.random.default_rng(0).normal(size=1000))
    assert Reference.from_dict(ref.to_dict()) == ref


def test_reference__refuses_an_empty_sample():
    with pytest.raises(ValueError):
        Reference.fit(np.array([np.nan]))


def test_monitor__reports_drift_only_above_threshold_with_enough_values_and_sets_gauges():
    rng = np.random.default_rng(2)
    monitor = DriftMonitor(
        "testdrift",
        {
            "score": Reference.fit(rng.beta(2, 5, 5000)),
            "event:x": Reference.fit(rng.normal(size=5000)),
        },
        threshold=0.25,
        recent=1000,
        min_values=200,
    )
    monitor.update("score", rng.beta(5, 2, 100))
    assert monitor.drifted() == {}  # too few values yet
    monitor.update("score", rng.beta(5, 2, 900))
    monitor.update("event:x", rng.normal(size=1000))
    monitor.update("unknown", [1.0, 2.0])
    drifted = monitor.drifted()
    assert list(drifted) == ["score"]
    gauge = REGISTRY.get_sample_value(
        "crmrisk_drift_psi", {"domain": "testdrift", "quantity": "score"}
    )
    assert gauge == pytest.approx(drifted["score"])
    monitor.reset()
    assert monitor.psi() == {}
