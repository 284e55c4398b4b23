"""Metrics for risk scores and quantile heads, and the validation-only decision threshold.

The threshold that turns a probability into a yes/no (for accuracy, recall and F1) is chosen on
the validation split to maximise F1 and then applied unchanged to the test split: the test labels
never influence it. Ranking and probability metrics (AUC, PR-AUC, Brier, calibration error) need
no threshold.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    f1_score,
    precision_recall_curve,
    recall_score,
    roc_auc_score,
)

__all__ = [
    "binary_metrics",
    "choose_threshold",
    "expected_calibration_error",
    "pinball_loss_np",
    "quantile_metrics",
    "score_split",
]


def _check_binary(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y).astype(int).ravel()
    p = np.asarray(p, dtype=float).ravel()
    if y.shape != p.shape:
        raise ValueError(f"labels {y.shape} and probabilities {p.shape} differ in shape")
    if y.size == 0:
        raise ValueError("no rows to evaluate")
    if not set(np.unique(y)) <= {0, 1}:
        raise ValueError(f"labels must be 0/1, got {sorted(set(np.unique(y)))[:5]}")
    if not np.all(np.isfinite(p)):
        raise ValueError("probabilities contain NaN or inf")
    return y, p


def choose_threshold(y_val: np.ndarray, p_val: np.ndarray) -> float:
    """The probability threshold that maximises F1 on validation rows (ties: the lowest).

    Falls back to 0.5 when validation holds a single class (F1 is undefined there).

    >>> choose_threshold(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    0.35
    """
    y, p = _check_binary(y_val, p_val)
    if y.min() == y.max():
        return 0.5
    precision, recall, thresholds = precision_recall_curve(y, p)
    # precision/recall have one more entry than thresholds (the (1, 0) end point): drop it.
    precision, recall = precision[:-1], recall[:-1]
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
    return float(thresholds[int(np.argmax(f1))])


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Weighted mean |observed rate - mean probability| over equal-width probability bins.

    >>> expected_calibration_error(np.array([0, 1]), np.array([0.0, 1.0]))
    0.0
    """
    y, p = _check_binary(y, p)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # np.digitize against the inner edges puts p == 1.0 in the last bin.
    which = np.clip(np.digitize(p, edges[1:-1], right=False), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            error += in_bin.mean() * abs(y[in_bin].mean() - p[in_bin].mean())
    return float(error)


def binary_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    """Accuracy, recall, F1 at ``threshold`` plus AUC, PR-AUC, Brier and ECE."""
    y, p = _check_binary(y, p)
    predicted = (p >= threshold).astype(int)
    two_classes = y.min() != y.max()
    return {
        "accuracy": float(accuracy_score(y, predicted)),
        "recall": float(recall_score(y, predicted, zero_division=0)),
        "f1": float(f1_score(y, predicted, zero_division=0)),
        "auc": float(roc_auc_score(y, p)) if two_classes else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if two_classes else float("nan"),
        "brier": float(brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p),
        "threshold": float(threshold),
        "positive_rate": float(y.mean()),
    }


def score_split(
    y_val: np.ndarray, p_val: np.ndarray, y_test: np.ndarray, p_test: np.ndarray
) -> dict[str, dict[str, float]]:
    """Metrics on validation and test, both at the threshold chosen on validation alone."""
    threshold = choose_threshold(y_val, p_val)
    return {
        "val": binary_metrics(y_val, p_val, threshold),
        "test": binary_metrics(y_test, p_test, threshold),
    }


def pinball_loss_np(y: np.ndarray, q: np.ndarray, quantiles: Sequence[float]) -> float:
    """Mean pinball loss over rows and quantile levels; ``q`` is ``[N, len(quantiles)]``."""
    y = np.asarray(y, dtype=float).reshape(-1, 1)
    q = np.asarray(q, dtype=float)
    taus = np.asarray(quantiles, dtype=float).reshape(1, -1)
    if q.shape != (y.shape[0], taus.shape[1]):
        raise ValueError(f"quantiles shape {q.shape}, expected {(y.shape[0], taus.shape[1])}")
    diff = y - q
    return float(np.mean(np.maximum(taus * diff, (taus - 1) * diff)))


def quantile_metrics(y: np.ndarray, q: np.ndarray, quantiles: Sequence[float]) -> dict[str, float]:
    """Outer-interval coverage, mean pinball loss and crossing rate of quantile predictions.

    Coverage is the share of rows with ``q_lowest <= y <= q_highest`` (q10-q90: nominal 80%).
    Crossing rate is the share of rows where some quantile exceeds the next higher one.

    >>> q = np.array([[0, 1, 2], [0, 1, 2.0]])
    >>> m = quantile_metrics(np.array([1.0, 5.0]), q, (0.1, 0.5, 0.9))
    >>> m["coverage"], m["crossing_rate"]
    (0.5, 0.0)
    """
    y = np.asarray(y, dtype=float).ravel()
    q = np.asarray(q, dtype=float)
    if q.ndim != 2 or q.shape[0] != y.shape[0] or q.shape[1] != len(quantiles):
        raise ValueError(f"quantiles shape {q.shape} does not match {y.shape[0]} rows")
    covered = (y >= q[:, 0]) & (y <= q[:, -1])
    crossing = (np.diff(q, axis=1) < 0).any(axis=1) if q.shape[1] > 1 else np.zeros(len(y), bool)
    return {
        "coverage": float(covered.mean()),
        "nominal_coverage": float(quantiles[-1] - quantiles[0]),
        "pinball": pinball_loss_np(y, q, quantiles),
        "crossing_rate": float(crossing.mean()),
    }
