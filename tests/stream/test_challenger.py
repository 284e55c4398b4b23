"""A challenger on trial in the scoring step: shadow (scored, never served) and canary (a stable
share of customers served by it). In-memory ports, real models (``tests/stream/conftest.py``)."""

from __future__ import annotations

import numpy as np
import pytest

from crmrisk.stream.challenger import BUCKETS, Challenger, bucket_of, canary_rows
from crmrisk.stream.events import RiskAlert, RiskScore, ShadowScore
from tests.stream.conftest import Log, Record, kit, pipeline, raw_event, run

CUSTOMERS = [f"c{i}" for i in range(40)]


def _batch(day: int = 1, start: int = 0) -> list[Record]:
    values = [raw_event(f"{c}-{day}", customer=c, day=day) for c in CUSTOMERS]
    return [Record("events", 0, start + i, c.encode(), v, 1000) for i, (c, v) in
            enumerate(zip(CUSTOMERS, values, strict=True))]  # fmt: skip


def _run(challenger, champion=None, steps: int = 2):
    """Two batches; the challenger is tried from the first one on."""
    trials = [{"credit": challenger}] if challenger is not None else []
    p, source, sink = pipeline(
        Log(),
        [_batch(1), _batch(2, start=len(CUSTOMERS))],
        model_kit=champion or kit("v1", bias=8.0),
        trials_between_batches=lambda: trials.pop(0) if trials else {},
    )
    run(p, steps=steps)
    return p, source, sink


def _served(sink) -> list[tuple]:
    scores = [RiskScore.model_validate_json(v) for v in sink.on("scores")]
    return [(s.customer_id, s.event_id, s.probability, s.model_version,
             [e.event_id for e in s.top_events]) for s in scores]  # fmt: skip


def _alerts(sink) -> list[tuple]:
    alerts = [RiskAlert.model_validate_json(v) for v in sink.on("alerts")]
    return sorted((a.customer_id, a.event_id, a.model_version) for a in alerts)


def test_bucket__stable_and_the_canary_share_matches_its_percent():
    assert bucket_of("customer-7") == bucket_of("customer-7")
    assert 0 <= bucket_of("x") < BUCKETS
    ids = [f"customer-{i}" for i in range(20_000)]
    for percent in (1, 10, 50):
        share = canary_rows(ids, percent).mean() * 100
        assert abs(share - percent) < 1.0, (percent, share)
    assert not canary_rows(ids, 0).any() and canary_rows(ids, 100).all()


def test_shadow__the_champion_publishes_and_stores_exactly_what_it_would_without_it():
    _, source_alone, alone = _run(None)
    shadow = Challenger("shadow", kit("v2", seed=3, bias=-8.0).scorer)  # would never alert
    p, source, sink = _run(shadow)
    assert _served(sink) == _served(alone)
    assert _alerts(sink) == _alerts(alone) and _alerts(alone)
    assert source.committed == source_alone.committed
    records = [ShadowScore.model_validate_json(v) for v in sink.on("shadow")]
    assert len(records) == 2 * len(CUSTOMERS)  # every scored row, again
    champion = {(s[0], s[1]): s[2] for s in _served(alone)}
    for r in records:
        assert (r.model_version, r.champion_version) == ("v2", "v1")
        assert r.champion_probability == champion[(r.customer_id, r.event_id)]
        assert r.probability < 0.01 and r.would_alert is False
        assert r.shadow_us > 0 and r.champion_us > 0
    rows = p.metrics.challenger_rows.labels("credit", "shadow")._value.get()
    assert rows == 2 * len(CUSTOMERS)


def test_shadow__one_that_fails_is_counted_and_changes_nothing():
    _, _, alone = _run(None)
    broken = kit("v2").scorer

    def fail(windows):
        raise RuntimeError("shadow kernel failed")

    broken.score_windows = fail
    p, source, sink = _run(Challenger("shadow", broken))
    assert _served(sink) == _served(alone)
    assert sink.on("shadow") == []
    assert p.metrics.challenger_failures.labels("credit", "shadow")._value.get() == 80
    assert source.committed == {0: 2 * len(CUSTOMERS)}


def test_canary__its_customers_are_served_and_alerted_on_by_it_the_others_by_the_champion():
    canary = Challenger("canary", kit("v2", seed=3, bias=8.0).scorer, percent=30.0)
    _, _, sink = _run(canary)
    theirs = set(np.array(CUSTOMERS)[canary_rows(CUSTOMERS, 30.0)].tolist())
    assert 0 < len(theirs) < len(CUSTOMERS)
    served = _served(sink)
    assert len(served) == 2 * len(CUSTOMERS)
    for customer, _, _, version, _ in served:
        assert version == ("v2" if customer in theirs else "v1"), customer
    alerts = _alerts(sink)
    assert {a[2] for a in alerts if a[0] in theirs} == {"v2"}
    assert {a[2] for a in alerts if a[0] not in theirs} == {"v1"}


def test_canary__rows_it_fails_on_are_served_by_the_champion_and_counted():
    broken = kit("v2").scorer

    def fail(windows):
        raise RuntimeError("canary kernel failed")

    broken.score_windows = fail
    p, _, sink = _run(Challenger("canary", broken, percent=50.0))
    served = _served(sink)
    assert len(served) == 2 * len(CUSTOMERS) and {s[3] for s in served} == {"v1"}
    failed = p.metrics.challenger_failures.labels("credit", "canary")._value.get()
    assert failed == 2 * canary_rows(CUSTOMERS, 50.0).sum()


def test_trial_end__none_ends_it_from_the_next_batch_on():
    shadow = Challenger("shadow", kit("v2").scorer)
    trials = [{"credit": shadow}, {"credit": None}]
    p, _, sink = pipeline(
        Log(),
        [_batch(1), _batch(2, start=len(CUSTOMERS))],
        model_kit=kit("v1", bias=8.0),
        trials_between_batches=lambda: trials.pop(0) if trials else {},
    )
    run(p, steps=2)
    assert len(sink.on("shadow")) == len(CUSTOMERS)  # the first batch only
    assert p.stages.scoring.challengers == {}


def test_shadow__needs_a_topic_to_publish_to():
    p, _, _ = pipeline(Log(), [])
    p.topics = type(p.topics)("dlq", "scores", "alerts", "requests", None)
    with pytest.raises(ValueError, match="shadow_scores"):
        p.try_out("credit", Challenger("shadow", kit("v2").scorer))
