"""Whether a challenger goes live: its metrics next to the champion's on the held-out slice.

``PromotionRule.decide`` promotes only when the challenger's AUC is not lower than the
champion's by more than ``auc_tolerance`` and its calibration error not higher by more than
``calibration_tolerance``, and the slice is large enough (rows, and positives and negatives) to
tell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from sklearn.metrics import brier_score_loss, roc_auc_score

from crmrisk.training.data import Arrays
from crmrisk.training.evaluate import expected_calibration_error
from crmrisk.training.fit import predict

__all__ = ["Decision", "PromotionRule", "SliceMetrics", "slice_metrics"]


@dataclass(frozen=True)
class SliceMetrics:
    auc: float
    calibration_error: float
    brier: float
    rows: int
    positives: int

    def as_dict(self, prefix: str = "") -> dict[str, float | None]:
        """The metrics under ``prefix``; an undefined one (AUC on one class: NaN) is None, as
        the registry's manifest is strict JSON."""
        values = {
            "auc": self.auc,
            "calibration_error": self.calibration_error,
            "brier": self.brier,
            "rows": self.rows,
            "positives": self.positives,
        }
        return {f"{prefix}{k}": None if math.isnan(v) else v for k, v in values.items()}


def slice_metrics(model: torch.nn.Module, data: Arrays) -> SliceMetrics:
    """AUC (NaN with one class), calibration error and Brier score of ``model`` on ``data``."""
    p = predict(model, data).probability
    y = data.label.astype(int)
    two_classes = y.min() != y.max()
    return SliceMetrics(
        auc=float(roc_auc_score(y, p)) if two_classes else math.nan,
        calibration_error=expected_calibration_error(y, p),
        brier=float(brier_score_loss(y, p)),
        rows=len(y),
        positives=int(y.sum()),
    )


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


@dataclass(frozen=True)
class PromotionRule:
    """Champion/challenger gate on the held-out slice."""

    auc_tolerance: float
    calibration_tolerance: float
    min_holdout: int
    min_positives: int = 5

    def decide(self, champion: SliceMetrics, challenger: SliceMetrics) -> Decision:
        """Promote unless the challenger is worse beyond tolerance or the slice cannot tell.

        >>> from dataclasses import replace
        >>> rule = PromotionRule(auc_tolerance=0.01, calibration_tolerance=0.02, min_holdout=10)
        >>> old = SliceMetrics(0.75, calibration_error=0.03, brier=0.15, rows=500, positives=99)
        >>> rule.decide(old, replace(old, auc=0.745)).promote
        True
        >>> rule.decide(old, replace(old, auc=0.70)).reason
        'rejected: AUC 0.7000 < champion 0.7500 - tolerance 0.0100'
        """
        negatives = challenger.rows - challenger.positives
        if challenger.rows < self.min_holdout:
            return Decision(
                False,
                f"rejected: held-out slice has {challenger.rows} rows, need {self.min_holdout}",
            )
        if min(challenger.positives, negatives) < self.min_positives:
            return Decision(
                False,
                f"rejected: held-out slice has {challenger.positives} "
                f"positives and {negatives} negatives, need "
                f"{self.min_positives} of each",
            )
        if not challenger.auc >= champion.auc - self.auc_tolerance:  # NaN-safe
            return Decision(
                False,
                f"rejected: AUC {challenger.auc:.4f} < champion "
                f"{champion.auc:.4f} - tolerance {self.auc_tolerance:.4f}",
            )
        limit = champion.calibration_error + self.calibration_tolerance
        if not challenger.calibration_error <= limit:
            return Decision(
                False,
                f"rejected: calibration error "
                f"{challenger.calibration_error:.4f} > champion "
                f"{champion.calibration_error:.4f} + tolerance "
                f"{self.calibration_tolerance:.4f}",
            )
        return Decision(
            True,
            f"promoted: AUC {challenger.auc:.4f} vs champion "
            f"{champion.auc:.4f}, calibration error "
            f"{challenger.calibration_error:.4f} vs "
            f"{champion.calibration_error:.4f}",
        )
