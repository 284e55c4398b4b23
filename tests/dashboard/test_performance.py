"""PerformanceView (dashboard/performance.py): estimated vs realized per chunk, calibration,
champion vs challenger, bounded memory; fed RiskScore, Outcome and ShadowScore messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import roc_auc_score

from crmrisk.dashboard.performance import PerformanceView
from crmrisk.stream.events import Outcome, RiskScore, ShadowScore
from crmrisk.training.performance import ASSUMPTIONS, estimate, expected_auc, performance_by_chunk

T0 = datetime(2024, 1, 1, tzinfo=UTC)  # a chunk boundary for 1-hour chunks
HOUR = timedelta(hours=1)


def _view(**overrides) -> PerformanceView:
    args = dict(
        threshold=0.5, chunk_s=3600.0, chunks=10, chunk_scores=1000, outcomes=1000, scatter=100,
        draws=50,
    )  # fmt: skip
    return PerformanceView(**(args | overrides))


def _score(customer: str, p: float, at: datetime, version: str = "v1") -> RiskScore:
    return RiskScore(
        customer_id=customer, domain="credit", event_id=f"{customer}-{at:%H%M}", event_time=at,
        probability=p, model_version=version, scored_at=at,
        top_events=[], reasons=[],
    )  # fmt: skip


def _outcome(customer: str, label: int, as_of: datetime) -> Outcome:
    return Outcome(
        customer_id=customer, domain="credit", as_of=as_of, observed_at=as_of + HOUR, label=label
    )


def _shadow(p_champion: float, p_challenger: float, at: datetime, threshold=0.5) -> ShadowScore:
    return ShadowScore(
        customer_id="c", domain="credit", event_id=f"e{p_champion}", event_time=at,
        probability=p_challenger, model_version="v2", champion_version="v1",
        champion_probability=p_champion, would_alert=p_challenger >= threshold, scored_at=at,
        shadow_us=10.0, champion_us=8.0,
    )  # fmt: skip


def test_report__estimate_per_chunk_and_realized_where_outcomes_joined():
    view = _view()
    first = [0.1, 0.2, 0.7, 0.9]
    second = [0.05, 0.3, 0.6, 0.8, 0.95]
    for i, p in enumerate(first):
        view.add_score(_score(f"a{i}", p, T0 + timedelta(minutes=10 * i)))
    for i, p in enumerate(second):
        view.add_score(_score(f"b{i}", p, T0 + HOUR + timedelta(minutes=5 * i)))
    labels = [0, 1, 0, 1, 1]  # the second chunk's customers only
    for i, y in enumerate(labels):
        view.add_outcome(_outcome(f"b{i}", y, T0 + 2 * HOUR))

    report = view.report("credit")

    assert report["assumptions"] == ASSUMPTIONS and report["threshold"] == 0.5
    one, two = report["versions"]["v1"]["chunks"]
    assert (one["start"], two["start"]) == (T0.isoformat(), (T0 + HOUR).isoformat())
    assert one["n"] == 4 and two["n"] == 5
    assert one["estimated_auc"] == pytest.approx(expected_auc(np.array(first)), abs=1e-6)
    assert two["estimated_auc"] == pytest.approx(expected_auc(np.array(second)), abs=1e-6)
    band = estimate(np.array(second), 0.5, draws=50).auc_std  # the same seed: the same band
    assert two["auc_std"] == pytest.approx(band, abs=1e-6) and band > 0
    assert two["expected_positives"] == pytest.approx(sum(second))
    assert one["realized_auc"] is None and one["labelled"] == 0
    assert two["realized_auc"] == pytest.approx(roc_auc_score(labels, second))
    assert two["labelled"] == 5 and two["positives"] == 3


def test_report__joins_outcomes_point_in_time_and_draws_the_reliability_curve():
    view = _view()
    rng = np.random.default_rng(7)
    p = rng.uniform(0, 1, 200)
    y = (rng.uniform(0, 1, 200) < p).astype(int)
    for i, (pi, yi) in enumerate(zip(p, y, strict=True)):
        view.add_score(_score(f"c{i}", float(pi), T0))
        # A later score saw events after the outcome's prediction time: never joined.
        view.add_score(_score(f"c{i}", 1.0 - float(pi), T0 + 3 * HOUR))
        view.add_outcome(_outcome(f"c{i}", int(yi), T0 + HOUR))

    seen = view.report("credit")["versions"]["v1"]
    observed, mean_p = calibration_curve(y, p, n_bins=10)
    assert seen["reliability"]["n"] == 200
    assert seen["reliability"]["observed"] == pytest.approx(observed, abs=1e-4)
    assert seen["reliability"]["mean_p"] == pytest.approx(mean_p, abs=1e-4)
    first, later = seen["chunks"]
    assert first["realized_auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-6)
    assert later["labelled"] == 0 and later["realized_auc"] is None


def test_report__versions_apart_and_json_safe_without_a_pair_to_order():
    view = _view()
    view.add_score(_score("a", 0.4, T0, "v1"))  # one score: no AUC (NaN), shown as None
    view.add_score(_score("a", 0.6, T0, "v2"))
    view.add_score(_score("b", 0.2, T0, "v2"))
    report = view.report("credit")
    assert sorted(report["versions"]) == ["v1", "v2"]
    (alone,) = report["versions"]["v1"]["chunks"]
    assert alone["estimated_auc"] is None and alone["n"] == 1
    (pair,) = report["versions"]["v2"]["chunks"]
    assert pair["estimated_auc"] == pytest.approx(expected_auc(np.array([0.6, 0.2])), abs=1e-6)
    assert view.report("telco")["versions"] == {}


def test_report__equals_performance_by_chunk_on_random_streams():
    """The view chunks and joins once itself: the same rows as the library's reference."""
    rng = np.random.default_rng(3)
    view = _view(chunks=50)
    scores, outcomes = [], []
    # Distinct event times: which of two scores at one time is "the latest" is arbitrary.
    for second in rng.choice(6 * 3600, size=600, replace=False):
        at = T0 + timedelta(seconds=int(second))
        customer = f"c{rng.integers(0, 150)}"
        version = "v2" if at >= T0 + 3 * HOUR and rng.random() < 0.7 else "v1"
        scores.append(_score(customer, float(rng.uniform()), at, version))
    for k in range(150):
        as_of = T0 + timedelta(minutes=int(rng.integers(0, 7 * 60)))
        outcomes.append(_outcome(f"c{k}", int(rng.random() < 0.3), as_of))
    for score in rng.permutation(scores):  # arrival order must not matter
        view.add_score(score)
    for outcome in outcomes:
        view.add_outcome(outcome)

    report = view.report("credit")
    want = performance_by_chunk(scores, outcomes, 0.5, 3600.0, draws=50)
    got = [(v, c) for v, seen in sorted(report["versions"].items()) for c in seen["chunks"]]
    assert len(got) == len(want) and sum(r.realized is not None for r in want) >= 4
    for (version, chunk), row in zip(got, want, strict=True):
        assert (version, chunk["start"]) == (row.model_version, row.chunk_start.isoformat())
        assert chunk["n"] == row.estimate.n
        assert chunk["estimated_auc"] == pytest.approx(row.estimate.auc, abs=1e-6)
        assert chunk["auc_std"] == pytest.approx(row.estimate.auc_std, abs=1e-6)
        real = row.realized
        assert chunk["labelled"] == (0 if real is None else real.n)
        if real is not None and real.auc is not None:
            assert chunk["realized_auc"] == pytest.approx(real.auc, abs=1e-6)
        else:
            assert chunk["realized_auc"] is None


def test_champion_vs_challenger__agreement_difference_and_would_be_alerts_per_chunk():
    view = _view()
    view.add_shadow(_shadow(0.6, 0.7, T0))  # both alert
    view.add_shadow(_shadow(0.4, 0.55, T0 + timedelta(minutes=1)))  # only the challenger
    view.add_shadow(_shadow(0.2, 0.1, T0 + timedelta(minutes=2)))  # neither
    view.add_shadow(_shadow(0.9, 0.3, T0 + HOUR))  # next chunk: only the champion

    (pair,) = view.report("credit")["shadow"]
    assert (pair["champion"], pair["challenger"]) == ("v1", "v2")
    first, second = pair["chunks"]
    assert first["start"] == T0.isoformat() and first["n"] == 3
    assert first["mean_abs_diff"] == pytest.approx((0.1 + 0.15 + 0.1) / 3, abs=1e-6)
    assert first["agreement"] == pytest.approx(2 / 3, abs=1e-6)
    assert (first["challenger_alerts"], first["champion_alerts"]) == (2, 1)
    assert second["mean_abs_diff"] == pytest.approx(0.6) and second["agreement"] == 0.0
    assert (second["challenger_alerts"], second["champion_alerts"]) == (0, 1)
    assert view.report("credit")["scatter"] == [[0.6, 0.7], [0.4, 0.55], [0.2, 0.1], [0.9, 0.3]]


def test_memory__newest_chunks_and_newest_scores_per_chunk_only():
    view = _view(chunks=2, chunk_scores=3, scatter=2)
    for hour in (0, 1, 2):  # three chunks: the first is dropped when the third arrives
        for i in range(5):
            view.add_score(_score(f"h{hour}-{i}", 0.1 * (i + 1), T0 + hour * HOUR))
    view.add_score(_score("late", 0.5, T0))  # older than both chunks held: dropped
    chunks = view.report("credit")["versions"]["v1"]["chunks"]
    assert [c["start"] for c in chunks] == [(T0 + HOUR).isoformat(), (T0 + 2 * HOUR).isoformat()]
    assert [c["n"] for c in chunks] == [3, 3]  # the newest three of five
    assert chunks[-1]["expected_positives"] == pytest.approx(0.3 + 0.4 + 0.5)
    assert view.dropped == 1
    for k in range(4):
        view.add_shadow(_shadow(0.1 * k, 0.2, T0 + 2 * HOUR))
    assert view.report("credit")["scatter"] == [[0.2, 0.2], [0.3, 0.2]]


def test_changed__names_the_domains_with_news_until_reported():
    view = _view()
    assert view.changed == set()
    view.add_outcome(_outcome("a", 1, T0))
    assert view.changed == {"credit"}
    view.report("credit")
    assert view.changed == set()


def test_init__refuses_an_empty_chunk():
    with pytest.raises(ValueError, match="chunk_s"):
        _view(chunk_s=0.0)
