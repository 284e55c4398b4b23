"""Platt scaling and conformalised quantile margins (training/calibration.py)."""

from __future__ import annotations

import numpy as np
import pytest

from crmrisk.training.calibration import conformal_margin, platt


def _heteroscedastic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 4, n)
    return x, x + rng.normal(size=n) * (0.5 + x)  # noise grows with x


@pytest.mark.parametrize("width", [0.2, 1.0])  # far too narrow, narrow
def test_conformal_margin__gives_nominal_coverage_on_fresh_rows(width):
    # An interval model that is wrong by construction: a constant half-width around x.
    x_cal, y_cal = _heteroscedastic(4000, seed=0)
    x_new, y_new = _heteroscedastic(20000, seed=1)
    margin = conformal_margin(x_cal - width, x_cal + width, y_cal, coverage=0.8)
    covered = ((y_new >= x_new - width - margin) & (y_new <= x_new + width + margin)).mean()
    assert 0.78 <= covered <= 0.82
    raw = ((y_new >= x_new - width) & (y_new <= x_new + width)).mean()
    assert abs(raw - 0.8) > 0.1  # the uncalibrated interval really was off


def test_conformal_margin__never_narrows_an_interval_that_over_covers():
    # Held-out rows of the training period over-cover; later rows may not: keep the width.
    x_cal, y_cal = _heteroscedastic(4000, seed=0)
    assert conformal_margin(x_cal - 6.0, x_cal + 6.0, y_cal, coverage=0.8) == 0.0
    covered = ((y_cal >= x_cal - 6.0) & (y_cal <= x_cal + 6.0)).mean()
    assert covered > 0.9  # it really did over-cover


def test_conformal_margin__ignores_rows_without_a_target_and_checks_coverage():
    y = np.array([1.0, np.nan, 3.0])
    assert conformal_margin(np.zeros(3), np.zeros(3), y, 0.5) == 3.0
    assert conformal_margin(np.zeros(1), np.zeros(1), np.array([np.nan]), 0.5) == 0.0
    with pytest.raises(ValueError, match="coverage"):
        conformal_margin(np.zeros(1), np.zeros(1), np.zeros(1), 1.0)


def test_platt__fixes_overconfident_scores_and_keeps_their_order():
    rng = np.random.default_rng(0)
    true_logit = rng.normal(size=30000)
    y = (rng.random(30000) < 1 / (1 + np.exp(-true_logit))).astype(int)
    scale, bias = platt(3.0 * true_logit + 1.0, y)  # overconfident and shifted
    assert scale == pytest.approx(1 / 3, abs=0.03)
    assert bias == pytest.approx(-1 / 3, abs=0.05)


def test_platt__keeps_the_identity_when_it_cannot_fit():
    assert platt(np.zeros(5), np.ones(5)) == (1.0, 0.0)  # one class
    rng = np.random.default_rng(1)
    z = rng.normal(size=2000)
    anti = (z < 0).astype(int)  # scores that rank backwards: scale would be negative
    assert platt(z, anti) == (1.0, 0.0)
