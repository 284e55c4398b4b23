"""The promotion gate: champion vs challenger on the held-out slice, and why."""

import json
from dataclasses import replace

import pytest

from crmrisk.training.promotion_rule import PromotionRule, SliceMetrics

OLD = SliceMetrics(auc=0.75, calibration_error=0.03, brier=0.15, rows=500, positives=100)
RULE = PromotionRule(auc_tolerance=0.01, calibration_tolerance=0.02, min_holdout=100)


@pytest.mark.parametrize(
    ("challenger", "promote", "reason"),
    [
        (replace(OLD, auc=0.745), True, "promoted"),
        (replace(OLD, auc=0.80, calibration_error=0.02), True, "promoted"),
        (replace(OLD, auc=0.73), False, "AUC 0.7300 < champion 0.7500"),
        (replace(OLD, calibration_error=0.06), False, "calibration error 0.0600 > champion"),
        (replace(OLD, auc=float("nan")), False, "AUC nan"),
        (replace(OLD, rows=50, positives=10), False, "50 rows, need 100"),
        (replace(OLD, positives=2), False, "2 positives"),
    ],
)
def test_rule__decides_and_says_why(challenger, promote, reason):
    decision = RULE.decide(OLD, challenger)
    assert decision.promote is promote
    assert reason in decision.reason


def test_slice_metrics__an_undefined_auc_is_none_so_the_manifest_stays_json():
    one_class = SliceMetrics(float("nan"), 0.1, 0.2, rows=4, positives=0)
    metrics = one_class.as_dict("holdout_")
    assert metrics["holdout_auc"] is None and metrics["holdout_rows"] == 4
    json.dumps(metrics, allow_nan=False)  # what the registry's manifest demands
