"""The trial review: paired shadow figures, canary sides, and the verdict's rules in order."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from crmrisk.lifecycle import Trial
from crmrisk.stream.challenger import canary_rows
from crmrisk.stream.events import Outcome, RiskScore, ShadowScore
from crmrisk.training.trial_review import Rules, review_trial

T0 = datetime(2024, 1, 1, tzinfo=UTC)
N = 3000


def _world(seed: int = 0, n: int = N):
    """Calibrated champion probabilities and labels drawn from them."""
    rng = np.random.default_rng(seed)
    p = rng.beta(2, 5, size=n)
    y = (rng.random(n) < p).astype(int)
    return [f"c{i}" for i in range(n)], p, y, rng


def _score(customer, p, version, t):
    return RiskScore(customer_id=customer, domain="credit", event_id=f"{customer}-e",
                     event_time=t, probability=float(p), model_version=version,
                     scored_at=t)  # fmt: skip


def _shadow(customer, p, champion_p, t, version="v2"):
    return ShadowScore(customer_id=customer, domain="credit", event_id=f"{customer}-e",
                       event_time=t, probability=float(p), model_version=version,
                       champion_version="v1", champion_probability=float(champion_p),
                       would_alert=bool(p >= 0.5), scored_at=t, shadow_us=30.0,
                       champion_us=20.0)  # fmt: skip


def _outcomes(customers, y, t):
    return [Outcome(customer_id=c, domain="credit", as_of=t, observed_at=t + timedelta(days=30),
                    label=int(label)) for c, label in zip(customers, y, strict=True)]  # fmt: skip


def _trial(mode, percent=0.0):
    return Trial("credit", mode, "v2", percent, T0, "test")


def test_shadow__a_worse_challenger_fails_on_realized_auc_and_the_pairs_are_compared():
    customers, p, y, rng = _world()
    noisy = np.clip(p + rng.normal(0, 0.3, len(p)), 0, 1)  # much less informative
    t = T0 + timedelta(hours=1)
    scores = [_score(c, a, "v1", t) for c, a in zip(customers, p, strict=True)]
    shadow = [_shadow(c, b, a, t) for c, a, b in zip(customers, p, noisy, strict=True)]
    review = review_trial(
        _trial("shadow"), "v1", scores, shadow, _outcomes(customers, y, t), 0.5, canary_rows
    )
    assert review.verdict == "fail" and "realized AUC" in review.reason
    assert review.champion.realized_auc - review.challenger.realized_auc > 0.1
    assert review.champion.labelled == review.challenger.labelled == N
    assert review.error_rate == 0.0
    assert review.mean_abs_difference == pytest.approx(np.abs(p - noisy).mean())
    a, b = p >= 0.5, noisy >= 0.5
    assert review.alert_agreement == pytest.approx((a == b).mean())
    assert review.alerts_only_challenger == int((b & ~a).sum())
    assert (review.champion.mean_us, review.challenger.mean_us) == (20.0, 30.0)


def test_shadow__an_equal_challenger_passes_and_without_labels_the_estimate_decides():
    customers, p, y, _ = _world(1)
    t = T0 + timedelta(hours=1)
    scores = [_score(c, a, "v1", t) for c, a in zip(customers, p, strict=True)]
    shadow = [_shadow(c, a, a, t) for c, a in zip(customers, p, strict=True)]
    labelled = review_trial(
        _trial("shadow"), "v1", scores, shadow, _outcomes(customers, y, t), 0.5, canary_rows
    )
    assert labelled.verdict == "pass" and labelled.reason.startswith("realized")
    unlabelled = review_trial(_trial("shadow"), "v1", scores, shadow, [], 0.5, canary_rows)
    assert unlabelled.verdict == "pass" and unlabelled.reason.startswith("estimated")
    few = review_trial(_trial("shadow"), "v1", scores[:100], shadow[:100], [], 0.5, canary_rows)
    assert few.verdict == "wait"


def test_shadow__missing_shadow_rows_are_its_error_rate():
    customers, p, _, _ = _world(2)
    t = T0 + timedelta(hours=1)
    scores = [_score(c, a, "v1", t) for c, a in zip(customers, p, strict=True)]
    shadow = [_shadow(c, a, a, t) for c, a in zip(customers[:2000], p[:2000], strict=True)]
    review = review_trial(_trial("shadow"), "v1", scores, shadow, [], 0.5, canary_rows)
    assert review.error_rate == pytest.approx(1 / 3)
    assert review.verdict == "fail" and "error rate" in review.reason


def test_canary__sides_are_split_by_version_and_fallbacks_count_as_errors():
    customers, p, y, rng = _world(3)
    theirs = canary_rows(customers, 20.0)
    t = T0 + timedelta(hours=1)
    worse = rng.random(len(p))  # the canary: noise
    scores = [_score(c, b if mine else a, "v2" if mine else "v1", t)
              for c, a, b, mine in zip(customers, p, worse, theirs, strict=True)]  # fmt: skip
    outcomes = _outcomes(customers, y, t)
    review = review_trial(_trial("canary", 20.0), "v1", scores, [], outcomes, 0.5, canary_rows)
    assert review.challenger.scores == theirs.sum() and review.champion.scores == (~theirs).sum()
    assert review.error_rate == 0.0
    assert review.verdict == "fail" and review.challenger.realized_auc < 0.6
    # the champion serving canary customers means the canary failed on them
    fallback = [_score(c, a, "v1", t) if mine and i % 2 else s for i, (c, a, mine, s) in
                enumerate(zip(customers, p, theirs, scores, strict=True))]  # fmt: skip
    review = review_trial(_trial("canary", 20.0), "v1", fallback, [], [], 0.5, canary_rows,
                          Rules(max_error_rate=0.05))  # fmt: skip
    assert review.error_rate == pytest.approx(0.5, abs=0.05)
    assert review.verdict == "fail" and "error rate" in review.reason


def test_review__scores_before_the_trial_started_are_not_counted():
    customers, p, _, _ = _world(4, n=600)
    before = T0 - timedelta(hours=1)
    scores = [_score(c, a, "v2", before) for c, a in zip(customers, p, strict=True)]
    review = review_trial(_trial("canary", 50.0), "v1", scores, [], [], 0.5, canary_rows)
    assert review.challenger.scores == 0 and review.verdict == "wait"


def test_review__a_pass_waits_for_the_minimum_trial_time_a_fail_does_not():
    customers, p, y, rng = _world(5)
    t = T0 + timedelta(hours=1)
    scores = [_score(c, a, "v1", t) for c, a in zip(customers, p, strict=True)]
    same = [_shadow(c, a, a, t) for c, a in zip(customers, p, strict=True)]
    rules = Rules(min_trial_s=24 * 3600)
    early = review_trial(_trial("shadow"), "v1", scores, same, [], 0.5, canary_rows, rules, now=t)
    assert early.verdict == "wait" and "1.0 of 24 h" in early.reason
    later = review_trial(_trial("shadow"), "v1", scores, same, [], 0.5, canary_rows, rules,
                         now=T0 + timedelta(days=2))  # fmt: skip
    assert later.verdict == "pass"
    noise = [_shadow(c, b, a, t) for c, a, b in zip(customers, p, rng.random(len(p)), strict=True)]
    outcomes = _outcomes(customers, y, t)
    failing = review_trial(
        _trial("shadow"), "v1", scores, noise, outcomes, 0.5, canary_rows, rules, now=t
    )
    assert failing.verdict == "fail"
