"""The prior-shift correction: EM finds a moved base rate from probabilities alone."""

from __future__ import annotations

import numpy as np
import pytest

from crmrisk.training.evaluate import expected_calibration_error
from crmrisk.training.prior_shift import adjust_to_prior, estimate_prior


def _calibrated(rate: float, train_rate: float, n: int, seed: int):
    """Labels at ``rate`` and the exact posterior of a model calibrated at ``train_rate``:
    scores N(+1, 1) for positives and N(-1, 1) for negatives, so logit = 2 s + logit(prior)."""
    rng = np.random.default_rng(seed)
    y = rng.random(n) < rate
    s = np.where(y, rng.normal(1.0, 1.0, n), rng.normal(-1.0, 1.0, n))
    p = 1 / (1 + np.exp(-(2 * s + np.log(train_rate / (1 - train_rate)))))
    return y.astype(int), p


@pytest.mark.parametrize("rate", [0.05, 0.3, 0.5, 0.8])
def test_em_recovers_the_moved_rate_and_restores_calibration(rate):
    y, p = _calibrated(rate, 0.2, 40_000, seed=1)
    shift = estimate_prior(p, train_rate=0.2)
    assert shift.converged
    assert shift.rate == pytest.approx(y.mean(), abs=0.015)
    fixed = shift.adjust(p)
    assert expected_calibration_error(y, fixed) < 0.015
    if abs(rate - 0.2) > 0.05:
        assert expected_calibration_error(y, p) > 3 * expected_calibration_error(y, fixed)


def test_no_shift_changes_next_to_nothing():
    _, p = _calibrated(0.2, 0.2, 40_000, seed=2)
    shift = estimate_prior(p, train_rate=0.2)
    assert shift.rate == pytest.approx(0.2, abs=0.01)
    assert abs(shift.logit_shift) < 0.08
    assert np.abs(shift.adjust(p) - p).max() < 0.02


def test_the_correction_is_one_logit_shift_and_keeps_the_ranking():
    p = np.array([0.01, 0.2, 0.5, 0.7, 0.99])
    out = adjust_to_prior(p, 0.1, 0.4)
    logit = lambda q: np.log(q / (1 - q))  # noqa: E731
    assert np.allclose(logit(out) - logit(p), logit(0.4) - logit(0.1))
    assert list(np.argsort(out)) == list(np.argsort(p))
    assert np.allclose(adjust_to_prior(p, 0.3, 0.3), p)


@pytest.mark.parametrize(
    "p,rate,message",
    [
        (np.array([]), 0.2, "non-empty"),
        (np.array([0.2, np.nan]), 0.2, "finite"),
        (np.array([0.2, 1.2]), 0.2, "within"),
        (np.array([0.2, 0.4]), 1.0, "train_rate"),
    ],
)
def test_bad_input_is_refused(p, rate, message):
    with pytest.raises(ValueError, match=message):
        estimate_prior(p, rate)
