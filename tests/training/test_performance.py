"""Estimated (CBPE) vs realized performance: the estimate tracks the truth while calibration
holds, parts from it under concept drift; the fast expected AUC equals the O(n^2) sum; the
point-in-time join never takes a later score."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from crmrisk.stream.events import Outcome, RiskScore
from crmrisk.training.performance import (
    estimate,
    expected_auc,
    join_outcomes,
    performance_by_chunk,
    realized,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _calibrated(seed: int, n: int = 20_000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.beta(2, 5, size=n)
    return p, (rng.random(n) < p).astype(int)  # labels drawn from the probabilities: calibrated


def _brute_force_auc(p: np.ndarray) -> float:
    wins = total = 0.0
    for i in range(len(p)):
        for j in range(len(p)):
            if i == j:
                continue
            w = p[i] * (1 - p[j])  # i positive, j negative
            total += w
            wins += w * (1.0 if p[i] > p[j] else 0.5 if p[i] == p[j] else 0.0)
    return wins / total


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_estimate__auc_within_0_03_of_realized_when_calibrated(seed):
    p, y = _calibrated(seed)
    est, real = estimate(p, threshold=0.5), realized(p, y, threshold=0.5)
    assert abs(est.auc - real.auc) < 0.03
    assert abs(est.precision - real.precision) < 0.03
    assert abs(est.recall - real.recall) < 0.03
    assert abs(est.expected_positives - y.sum()) < 4 * np.sqrt((p * (1 - p)).sum())
    assert 0 < est.auc_std < 0.03  # the band: chance alone, for 20k scores


def test_estimate__and_realized_diverge_under_concept_drift():
    p, y = _calibrated(7)
    segment = np.random.default_rng(8).random(len(p)) < 0.4  # 40% of customers
    drifted = np.where(segment, 1 - y, y)  # their labels flipped: P(y | x) changed
    est, real = estimate(p, threshold=0.5), realized(p, drifted, threshold=0.5)
    assert est.auc - real.auc > 0.15  # the estimate cannot see it; the outcomes do
    assert est.auc - real.auc > 10 * est.auc_std


@pytest.mark.parametrize("seed", range(6))
def test_expected_auc__equals_brute_force_with_ties(seed):
    rng = np.random.default_rng(seed)
    p = rng.choice([0.0, 0.1, 0.25, 0.5, 0.8, 1.0], size=30) if seed % 2 else rng.random(25)
    p[:3] = p[3]  # at least one tie either way
    assert expected_auc(p) == pytest.approx(_brute_force_auc(p), abs=1e-12)


def test_estimate__confusion_matrix_sums_p_and_1_minus_p_on_each_side():
    p = np.array([0.9, 0.6, 0.4, 0.1])
    est = estimate(p, threshold=0.5, draws=10)
    assert (est.expected_tp, est.expected_fp) == pytest.approx((1.5, 0.5))
    assert (est.expected_fn, est.expected_tn) == pytest.approx((0.5, 1.5))
    assert est.precision == pytest.approx(0.75) and est.recall == pytest.approx(0.75)
    assert est.n == 4


def test_estimate__does_not_depend_on_the_order_of_scores():
    p, _ = _calibrated(3, n=2_000)
    shuffled = np.random.default_rng(4).permutation(p)
    assert estimate(p, threshold=0.3) == estimate(shuffled, threshold=0.3)


def test_expected_auc__is_nan_without_a_pair():
    assert np.isnan(expected_auc(np.array([]))) and np.isnan(expected_auc(np.array([0.4])))


def _score(customer: str, minutes: int, p: float, version: str = "v1") -> RiskScore:
    t = T0 + timedelta(minutes=minutes)
    return RiskScore(
        customer_id=customer, domain="credit", event_id=f"{customer}-{minutes}", event_time=t,
        probability=p, model_version=version, scored_at=t + timedelta(seconds=1),
    )  # fmt: skip


def _outcome(customer: str, minutes: int, label: int) -> Outcome:
    return Outcome(
        customer_id=customer, domain="credit", as_of=T0 + timedelta(minutes=minutes),
        observed_at=T0 + timedelta(days=30), label=label,
    )  # fmt: skip


def test_join_outcomes__takes_the_latest_score_at_or_before_as_of_per_version():
    scores = [
        _score("a", 0, 0.1),
        _score("a", 10, 0.2),  # exactly at as_of: served then
        _score("a", 11, 0.9),  # after as_of: would leak
        _score("a", 5, 0.4, version="v2"),
        _score("a", 12, 0.7, version="v3"),  # v3 had not scored a by then
        _score("b", 20, 0.3),  # b's only score is later than its outcome
    ]
    pairs = join_outcomes(scores, [_outcome("a", 10, 1), _outcome("b", 10, 0)])
    chosen = {(s.model_version, s.probability) for s, _ in pairs}
    assert chosen == {("v1", 0.2), ("v2", 0.4)}
    assert all(o.customer_id == "a" for _, o in pairs)


def test_performance_by_chunk__estimate_per_version_and_chunk_realized_where_joined():
    scores = [_score(f"c{i}", i, 0.8 if i % 2 else 0.2) for i in range(10)]
    scores += [_score("x", 24 * 60 + 1, 0.5, version="v2")]
    outcomes = [_outcome(f"c{i}", 30, i % 2) for i in range(10)]
    rows = performance_by_chunk(scores, outcomes, threshold=0.5, chunk_s=86_400, draws=50)
    assert [(r.model_version, r.chunk_start, r.estimate.n) for r in rows] == [
        ("v1", T0, 10),
        ("v2", T0 + timedelta(days=1), 1),
    ]
    assert rows[0].realized is not None and rows[0].realized.auc == 1.0
    assert rows[0].realized.precision == 1.0 and rows[0].realized.n == 10
    assert rows[1].realized is None
    observed, mean_p = rows[0].realized.reliability
    assert list(mean_p) == pytest.approx([0.2, 0.8]) and list(observed) == [0.0, 1.0]


def test_estimate__expected_loss_tracks_the_realized_loss_where_exposure_is_known():
    p, y = _calibrated(11)
    exposure = np.random.default_rng(12).lognormal(8, 1, len(p))
    exposure[::10] = np.nan  # unknown for a tenth: left out of both, counted
    est = estimate(p, threshold=0.5, exposure=exposure)
    real = realized(p, y, threshold=0.5, exposure=exposure)
    known = np.isfinite(exposure)
    assert est.exposed == known.sum()
    assert est.expected_loss == pytest.approx((p * exposure)[known].sum())
    assert real.loss == pytest.approx((y * exposure)[known].sum())
    assert abs(est.expected_loss - real.loss) < 4 * est.expected_loss_std
    assert estimate(p, threshold=0.5).expected_loss is None


def test_performance_by_chunk__carries_the_scores_exposure():
    t = T0
    scores = [
        RiskScore(customer_id=f"c{i}", domain="credit", event_id=f"e{i}", event_time=t,
                  probability=0.2, model_version="v1", scored_at=t,
                  exposure=None if i == 0 else 1000.0)
        for i in range(3)
    ]  # fmt: skip
    outcomes = [Outcome(customer_id="c1", domain="credit", as_of=t, observed_at=t, label=1)]
    (row,) = performance_by_chunk(scores, outcomes, 0.5, 86400, draws=10)
    assert row.estimate.expected_loss == pytest.approx(400.0) and row.estimate.exposed == 2
    assert row.realized.loss == pytest.approx(1000.0)
