"""Performance while serving: estimated from calibrated probabilities, realized from outcomes.

**Estimated** (confidence-based, CBPE-style, as in NannyML): a calibrated probability ``p`` is
the chance the label is 1, so the labels of a chunk of scores are, in expectation, Bernoulli(p).
From the probabilities alone: the expected confusion matrix at the alert threshold (expected TP
= sum of ``p`` over predicted positives, FP = sum of ``1 - p`` over them; FN and TN likewise
over predicted negatives), estimated precision and recall, expected positives, and the expected
ROC AUC. Its band is the standard deviation of AUC, precision and recall over labels sampled as
Bernoulli(p) (``draws`` times, fixed seed): the spread chance alone gives a chunk of this size.

Assumptions, shown wherever the estimate is: the probabilities are calibrated on the live
traffic; there is no concept drift (``P(y | x)`` as in training); only covariate shift, which
the estimate follows. A concept drift is invisible to it: that is what the realized performance
is for, and why the two are shown side by side.

**Realized**: outcomes joined point in time with the score served for that customer at or
before the outcome's ``as_of`` (per model version), then AUC, precision/recall at the threshold
and a reliability curve (sklearn).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from scipy.stats import rankdata
from sklearn.calibration import calibration_curve
from sklearn.metrics import precision_score, recall_score, roc_auc_score

from crmrisk.stream.events import Outcome, RiskScore

__all__ = [
    "ASSUMPTIONS",
    "ChunkPerformance",
    "Estimate",
    "Realized",
    "estimate",
    "expected_auc",
    "join_outcomes",
    "performance_by_chunk",
    "realized",
]

_SAMPLE_CELLS = 4_000_000  # sampled labels held at once (~40 MB with the uniforms)

ASSUMPTIONS = "calibrated probabilities; no concept drift (only covariate shift)"


@dataclass(frozen=True)
class Estimate:
    """The CBPE estimate for one chunk; ``*_std`` is the band (std over sampled labels)."""

    n: int
    expected_tp: float
    expected_fp: float
    expected_fn: float
    expected_tn: float
    expected_positives: float
    precision: float
    recall: float
    auc: float
    auc_std: float
    precision_std: float
    recall_std: float
    # Over the scores whose exposure is known (``RiskScore.exposure``): sum of p x exposure, its
    # band (std of the sum of Bernoulli(p) x exposure), and how many scores it covers.
    expected_loss: float | None = None
    expected_loss_std: float | None = None
    exposed: int = 0


@dataclass(frozen=True)
class Realized:
    """Measured performance for one chunk; ``auc`` is None when only one class was seen."""

    n: int
    positives: int
    auc: float | None
    precision: float
    recall: float
    reliability: tuple[np.ndarray, np.ndarray]  # (observed rate, mean p) per non-empty bin
    loss: float | None = None  # sum of label x exposure over the scores with a known exposure


@dataclass(frozen=True)
class ChunkPerformance:
    """Estimated and realized side by side for one (model version, chunk)."""

    model_version: str
    chunk_start: datetime
    estimate: Estimate
    realized: Realized | None  # None until an outcome joins a score of this chunk


def expected_auc(p: np.ndarray) -> float:
    """The AUC expected when labels are Bernoulli(p) and ``p`` itself is the score.

    A ratio of expectations: over ordered pairs ``i != j``, weight ``p_i * (1 - p_j)`` (i
    positive, j negative), counted 1 when ``p_i > p_j``, 0.5 on a tie, divided by the total
    weight. O(n log n): sort, then each distinct value meets the ``1 - p`` mass below it.

    >>> round(expected_auc(np.array([0.1, 0.9])), 4)
    0.9878
    >>> expected_auc(np.array([0.3, 0.3, 0.3]))
    0.5
    """
    p = np.asarray(p, dtype=np.float64)
    if len(p) < 2:
        return float("nan")  # no pair to order
    values, inverse = np.unique(p, return_inverse=True)  # sorted distinct values
    pos = np.bincount(inverse, weights=p, minlength=len(values))  # sum p per value
    neg = np.bincount(inverse, weights=1 - p, minlength=len(values))  # sum 1-p per value
    self_pairs = np.bincount(inverse, weights=p * (1 - p), minlength=len(values))
    below = np.concatenate(([0.0], np.cumsum(neg)[:-1]))  # 1-p mass strictly below each value
    wins = pos @ below + 0.5 * (pos @ neg - self_pairs.sum())  # ties: half, i == j excluded
    total = p.sum() * (1 - p).sum() - (p * (1 - p)).sum()
    return float(wins / total) if total > 0 else float("nan")


def _exposed(p: np.ndarray, exposure: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """``p`` and ``exposure`` where the exposure is known (finite)."""
    if exposure is None:
        return np.zeros(0), np.zeros(0)
    e = np.asarray(exposure, dtype=np.float64)
    known = np.isfinite(e)
    return np.asarray(p, dtype=np.float64)[known], e[known]


def estimate(
    p: np.ndarray,
    threshold: float,
    draws: int = 300,
    seed: int = 0,
    exposure: np.ndarray | None = None,
) -> Estimate:
    """The CBPE estimate of a chunk of calibrated probabilities ``p`` at ``threshold``.

    Predicted positive means ``p >= threshold`` (as the alert policy fires). The band samples
    ``draws`` label vectors, a block of them at a time (a ``(rows, n)`` boolean array, bounded
    memory); AUC per draw from the average ranks of ``p`` (ties half), draws with a single
    class left out. ``p`` is sorted first, so the band does not depend on the order of scores.
    """
    pe, e = _exposed(p, exposure)  # expected loss: p x exposure, where the exposure is known
    p = np.sort(np.asarray(p, dtype=np.float64))  # the band must not depend on arrival order
    flagged = p >= threshold
    tp, fp = p[flagged].sum(), (1 - p[flagged]).sum()
    fn, tn = p[~flagged].sum(), (1 - p[~flagged]).sum()
    rng = np.random.default_rng(seed)
    ranks = rankdata(p)  # average ranks: ties count half
    aucs, precisions, recalls = [], [], []
    rows = max(1, _SAMPLE_CELLS // max(len(p), 1))  # draws per block: bounded memory
    for start in range(0, draws, rows):
        y = rng.random((min(rows, draws - start), len(p))) < p  # (rows, n) sampled labels
        n1 = y.sum(axis=1)
        n0 = len(p) - n1
        ok = (n1 > 0) & (n0 > 0)
        aucs.append((y[ok] @ ranks - n1[ok] * (n1[ok] + 1) / 2) / (n1[ok] * n0[ok]))
        tps = y[:, flagged].sum(axis=1)
        precisions.append(tps / flagged.sum() if flagged.any() else np.zeros(len(y)))
        recalls.append(tps[n1 > 0] / n1[n1 > 0])
    aucs, precisions, recalls = map(np.concatenate, (aucs, precisions, recalls))
    return Estimate(
        n=len(p),
        expected_tp=float(tp),
        expected_fp=float(fp),
        expected_fn=float(fn),
        expected_tn=float(tn),
        expected_positives=float(p.sum()),
        precision=float(tp / (tp + fp)) if flagged.any() else 0.0,
        recall=float(tp / (tp + fn)) if tp + fn > 0 else 0.0,
        auc=expected_auc(p),
        auc_std=float(aucs.std()) if len(aucs) else float("nan"),
        precision_std=float(precisions.std()),
        recall_std=float(recalls.std()) if len(recalls) else float("nan"),
        expected_loss=float(pe @ e) if len(e) else None,
        expected_loss_std=float(np.sqrt((pe * (1 - pe)) @ (e * e))) if len(e) else None,
        exposed=len(e),
    )


def realized(
    p: np.ndarray,
    y: np.ndarray,
    threshold: float,
    bins: int = 10,
    exposure: np.ndarray | None = None,
) -> Realized:
    """AUC, precision/recall at ``threshold`` and the reliability curve of labels ``y``; with
    ``exposure``, the realized loss (label x exposure where the exposure is known)."""
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    ye, e = _exposed(y, exposure)
    flagged = (p >= threshold).astype(np.int64)
    both = 0 < y.sum() < len(y)
    observed, mean_p = calibration_curve(y, p, n_bins=bins) if len(y) else (np.array([]),) * 2
    return Realized(
        n=len(y),
        positives=int(y.sum()),
        auc=float(roc_auc_score(y, p)) if both else None,
        precision=float(precision_score(y, flagged, zero_division=0)),
        recall=float(recall_score(y, flagged, zero_division=0)),
        reliability=(observed, mean_p),
        loss=float(ye @ e) if len(e) else None,
    )


def join_outcomes(
    scores: Iterable[RiskScore], outcomes: Iterable[Outcome]
) -> list[tuple[RiskScore, Outcome]]:
    """Each outcome with the score each model version served its customer at or before ``as_of``.

    Point in time: per (domain, customer, version) the latest score whose ``event_time <=
    as_of`` (a later score saw events after the prediction time, so it would leak). An outcome
    pairs once per version that had scored the customer by then; none when no score had.
    """
    served: dict[tuple[str, str, str], list[RiskScore]] = defaultdict(list)
    for s in scores:
        served[(s.domain, s.customer_id, s.model_version)].append(s)
    for history in served.values():
        history.sort(key=lambda s: (s.event_time, s.scored_at))
    by_customer: dict[tuple[str, str], list[tuple[list[datetime], list[RiskScore]]]]
    by_customer = defaultdict(list)
    for (domain, customer, _), history in served.items():
        by_customer[(domain, customer)].append(([s.event_time for s in history], history))
    pairs = []
    for o in outcomes:
        for times, history in by_customer.get((o.domain, o.customer_id), ()):
            i = bisect.bisect_right(times, o.as_of)
            if i:
                pairs.append((history[i - 1], o))
    return pairs


def _exposure(score: RiskScore) -> float:
    value = getattr(score, "exposure", None)
    return float("nan") if value is None else float(value)


def _chunk(t: datetime, chunk_s: float) -> datetime:
    return datetime.fromtimestamp(t.timestamp() // chunk_s * chunk_s, tz=t.tzinfo)


def performance_by_chunk(
    scores: Sequence[RiskScore],
    outcomes: Sequence[Outcome],
    threshold: float,
    chunk_s: float,
    draws: int = 300,
) -> list[ChunkPerformance]:
    """Per (model version, chunk of score event time): the estimate, and realized if it can.

    The estimate covers every score served in the chunk; the realized part, the scores of the
    chunk that an outcome joined (``join_outcomes``). Sorted by version, then chunk.
    """
    served: dict[tuple[str, datetime], list[tuple[float, float]]] = defaultdict(list)
    for s in scores:
        served[(s.model_version, _chunk(s.event_time, chunk_s))].append(
            (s.probability, _exposure(s))
        )
    labelled: dict[tuple[str, datetime], list[tuple[float, int, float]]] = defaultdict(list)
    for s, o in join_outcomes(scores, outcomes):
        labelled[(s.model_version, _chunk(s.event_time, chunk_s))].append(
            (s.probability, o.label, _exposure(s))
        )
    rows = []
    for key in sorted(served):
        pairs = labelled.get(key)
        real = None
        if pairs:
            p, y, e = map(np.array, zip(*pairs, strict=True))
            real = realized(p, y, threshold, exposure=e)
        p, e = map(np.array, zip(*served[key], strict=True))
        est = estimate(p, threshold, draws=draws, exposure=e)
        rows.append(ChunkPerformance(key[0], key[1], est, real))
    return rows
