"""Prior shift: re-estimate the positive rate on unlabelled scores, and correct for it.

When the base rate moves between training and serving (bank's later campaigns convert three
times as often as its training period; retail's churn rate falls), a calibrated model stays
calibrated to the *old* rate: its ranking holds, its probabilities do not. Saerens, Latinne and
Decaestecker (2002, "Adjusting the outputs of a classifier to new a priori probabilities")
estimate the new rate by EM on the model's own probabilities over unlabelled rows, assuming only
the class balance moved (p(x | y) did not), and the corrected probability is Bayes' rule with
the new prior. For a binary model that correction is one shift of the logit,
``logit(new) - logit(old)``: the same form as the Platt bias the model already carries.

EM trusts the probabilities to be calibrated for every ``x``; when they are not (or when
``p(x | y)`` moved too) it can run to a rate of 0 or 1. ``adjusted_count`` (the probabilistic
adjusted count of Bella et al. 2010) needs less: the mean probability among held-out positives
and negatives, a line through which the unlabelled rows' mean probability is read back as a rate.

>>> p = np.array([0.2, 0.2, 0.9, 0.9, 0.9])
>>> shift = estimate_prior(p, train_rate=0.5)
>>> round(shift.rate, 3), shift.iterations > 1
(0.75, True)
>>> bool(np.all(np.argsort(shift.adjust(p)) == np.argsort(p)))  # the ranking is untouched
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PriorShift", "adjust_to_prior", "adjusted_count", "estimate_prior"]

_EPS = 1e-6


def _logit(p: np.ndarray | float) -> np.ndarray | float:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


@dataclass(frozen=True)
class PriorShift:
    """The estimated positive rate among the unlabelled rows, against the training rate."""

    train_rate: float
    rate: float
    iterations: int
    converged: bool

    @property
    def logit_shift(self) -> float:
        """What to add to the model's logit (or its Platt bias) for the new rate."""
        return float(_logit(self.rate) - _logit(self.train_rate))

    def adjust(self, probability: np.ndarray) -> np.ndarray:
        """``probability`` (calibrated at the training rate) at the estimated rate."""
        return adjust_to_prior(probability, self.train_rate, self.rate)


def adjust_to_prior(probability: np.ndarray, train_rate: float, new_rate: float) -> np.ndarray:
    """Bayes' rule with a new prior: the logit moves by ``logit(new) - logit(train)``."""
    shift = _logit(new_rate) - _logit(train_rate)
    z = _logit(np.asarray(probability, dtype=np.float64)) + shift
    return 1.0 / (1.0 + np.exp(-z))


def estimate_prior(
    probability: np.ndarray,
    train_rate: float,
    *,
    max_iter: int = 200,
    tol: float = 1e-6,
) -> PriorShift:
    """EM for the positive rate of unlabelled rows (Saerens et al. 2002).

    ``probability`` must be calibrated at ``train_rate`` (the rate the model's calibration saw):
    each step re-weighs the posteriors to the current estimate, and the new estimate is their
    mean. Needs no labels; the fixed point maximises the likelihood of the unlabelled rows.
    """
    p = np.asarray(probability, dtype=np.float64)
    if p.ndim != 1 or p.size == 0:
        raise ValueError("estimate_prior needs a non-empty 1-D array of probabilities")
    if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
        raise ValueError("probabilities must be finite and within [0, 1]")
    if not 0.0 < train_rate < 1.0:
        raise ValueError(f"train_rate must be in (0, 1), got {train_rate}")
    rate = float(train_rate)
    for iteration in range(1, max_iter + 1):
        new = float(np.clip(adjust_to_prior(p, train_rate, rate).mean(), _EPS, 1 - _EPS))
        if abs(new - rate) < tol:
            return PriorShift(float(train_rate), new, iteration, True)
        rate = new
    return PriorShift(float(train_rate), rate, max_iter, False)


def adjusted_count(
    probability: np.ndarray,
    held_out_probability: np.ndarray,
    held_out_label: np.ndarray,
    train_rate: float,
) -> PriorShift:
    """The positive rate of unlabelled rows from their mean probability (Bella et al. 2010).

    On held-out labelled rows, positives average ``tpr`` and negatives ``fpr``; if only the class
    balance moves, the unlabelled rows average ``rate * tpr + (1 - rate) * fpr``, so
    ``rate = (mean - fpr) / (tpr - fpr)``, clipped into (0, 1).
    """
    p = np.asarray(probability, dtype=np.float64)
    held = np.asarray(held_out_probability, dtype=np.float64)
    y = np.asarray(held_out_label).astype(bool)
    if p.ndim != 1 or p.size == 0:
        raise ValueError("adjusted_count needs a non-empty 1-D array of probabilities")
    if held.shape != y.shape or y.all() or not y.any():
        raise ValueError("the held-out rows need both classes and one probability per label")
    tpr, fpr = float(held[y].mean()), float(held[~y].mean())
    if tpr - fpr < 1e-3:
        raise ValueError(f"the model does not separate the held-out classes ({tpr=}, {fpr=})")
    rate = float(np.clip((p.mean() - fpr) / (tpr - fpr), 0.001, 0.999))
    return PriorShift(float(train_rate), rate, 1, True)
