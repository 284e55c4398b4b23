import numpy as np
import pytest
from sklearn.metrics import f1_score

from crmrisk.training.evaluate import (
    binary_metrics,
    choose_threshold,
    expected_calibration_error,
    pinball_loss_np,
    quantile_metrics,
    score_split,
)


def test_choose_threshold__maximises_validation_f1():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    p = np.clip(0.3 * y + rng.uniform(0, 0.7, 500), 0, 1)
    chosen = choose_threshold(y, p)
    best = max(f1_score(y, p >= t) for t in np.unique(p))
    assert f1_score(y, p >= chosen) == pytest.approx(best)


def test_choose_threshold__single_class_falls_back_to_half():
    assert choose_threshold(np.zeros(4), np.array([0.1, 0.2, 0.3, 0.9])) == 0.5


def test_score_split__threshold_comes_from_validation_not_test():
    # Validation is best cut at 0.3; test alone would be best cut at 0.7.
    y_val = np.array([0, 0, 1, 1, 1])
    p_val = np.array([0.1, 0.2, 0.3, 0.6, 0.8])
    y_test = np.array([0, 0, 0, 1, 1])
    p_test = np.array([0.35, 0.5, 0.65, 0.7, 0.9])
    assert choose_threshold(y_test, p_test) == pytest.approx(0.7)

    result = score_split(y_val, p_val, y_test, p_test)

    assert result["val"]["threshold"] == pytest.approx(0.3)
    assert result["test"]["threshold"] == pytest.approx(0.3)
    # At 0.3 every test row is called positive: accuracy 2/5, not the 5/5 a test-chosen cut gives.
    assert result["test"]["accuracy"] == pytest.approx(0.4)
    assert result["test"]["recall"] == 1.0


def test_binary_metrics__known_values():
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.6, 0.4, 0.9])
    m = binary_metrics(y, p, threshold=0.5)
    assert m["accuracy"] == 0.5
    assert m["recall"] == 0.5
    assert m["f1"] == 0.5
    assert m["auc"] == 0.75
    assert m["brier"] == pytest.approx((0.01 + 0.36 + 0.36 + 0.01) / 4)
    assert m["positive_rate"] == 0.5


def test_binary_metrics__rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        binary_metrics(np.array([0, 1]), np.array([0.5]), 0.5)
    with pytest.raises(ValueError, match="0/1"):
        binary_metrics(np.array([0, 2]), np.array([0.5, 0.5]), 0.5)
    with pytest.raises(ValueError, match="NaN"):
        binary_metrics(np.array([0, 1]), np.array([0.5, np.nan]), 0.5)


def test_expected_calibration_error__known_values():
    # One bin, observed rate 0.2 == mean probability 0.2: calibrated.
    assert expected_calibration_error(np.array([0, 0, 0, 0, 1]), np.full(5, 0.2)) == pytest.approx(
        0.0
    )
    # Half the rows at p=0.9 that never happen (gap 0.9), half at p=0.1 that do (gap 0.9).
    y = np.array([0, 0, 1, 1])
    p = np.array([0.9, 0.9, 0.1, 0.1])
    assert expected_calibration_error(y, p) == pytest.approx(0.9)


def test_pinball_loss__known_values():
    # tau 0.9 under-predicting by 1 costs 0.9; tau 0.1 over-predicting by 1 costs 0.9.
    assert pinball_loss_np(np.array([1.0]), np.array([[0.0]]), (0.9,)) == pytest.approx(0.9)
    assert pinball_loss_np(np.array([0.0]), np.array([[1.0]]), (0.1,)) == pytest.approx(0.9)
    assert pinball_loss_np(np.array([2.0]), np.array([[2.0, 2.0]]), (0.1, 0.9)) == 0.0


def test_quantile_metrics__coverage_and_crossing():
    y = np.array([1.0, 5.0, 2.0, 0.0])
    q = np.array([[0, 1, 2], [0, 1, 2], [3, 2, 4], [0, 0, 0.0]])
    m = quantile_metrics(y, q, (0.1, 0.5, 0.9))
    assert m["coverage"] == 0.5  # rows 0 and 3 lie in [q10, q90]
    assert m["crossing_rate"] == 0.25  # row 2 has q10 > q50
    assert m["nominal_coverage"] == pytest.approx(0.8)
    assert m["pinball"] == pytest.approx(pinball_loss_np(y, q, (0.1, 0.5, 0.9)))
