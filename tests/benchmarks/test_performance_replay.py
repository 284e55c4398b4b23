"""The computation of benchmarks/performance_replay.py on a small synthetic replay (no broker)."""

from datetime import UTC, datetime, timedelta

import numpy as np

from benchmarks.performance_replay import BAR, bucket, compare, flip_labels, stagger
from crmrisk.stream.events import CustomerEvent, Outcome, RiskScore
from crmrisk.training.datasets.records import CustomerRecord

AS_OF = datetime(2005, 10, 1, tzinfo=UTC)
STATEMENTS = [datetime(2005, 8, 31, tzinfo=UTC), datetime(2005, 9, 30, tzinfo=UTC)]
DAY_S = 86_400.0


def _record(customer: str) -> CustomerRecord:
    events = [
        CustomerEvent(
            event_id=f"{customer}-{t:%Y-%m}",
            customer_id=customer,
            event_time=t,
            domain="credit",
            kind="statement",
            fields={"bill_amt": 1.0},
        )
        for t in STATEMENTS
    ]
    return CustomerRecord(customer, {"AGE": 30}, events, 0, None, "test", AS_OF)


def _replay(customers: int, cohorts: int, seed: int = 0) -> tuple[list, list]:
    """Calibrated scores (labels drawn as Bernoulli(p)) on each cohort's staggered statements:
    an earlier score per customer that no outcome joins, then the one its outcome joins."""
    rng = np.random.default_rng(seed)
    scores, outcomes = [], []
    for record in stagger([_record(str(i)) for i in range(customers)], cohorts):
        p = float(rng.beta(1.2, 4.0))
        for event in record.events:
            scores.append(
                RiskScore(
                    customer_id=record.customer_id,
                    domain="credit",
                    event_id=event.event_id,
                    event_time=event.event_time,
                    probability=p if event is record.events[-1] else float(rng.random()),
                    model_version="v1",
                    scored_at=event.event_time,
                )
            )
        outcomes.append(
            Outcome(
                customer_id=record.customer_id,
                domain="credit",
                as_of=record.as_of,
                observed_at=record.as_of,
                label=int(rng.random() < p),
            )
        )
    return scores, outcomes


def test_stagger__shifts_each_whole_history_by_its_cohort_in_days():
    records = [_record(str(i)) for i in range(30)]
    for before, after in zip(records, stagger(records, 3), strict=True):
        by = timedelta(days=bucket(before.customer_id, "cycle", 3))
        assert after.as_of == before.as_of + by
        assert [e.event_time for e in after.events] == [e.event_time + by for e in before.events]
        assert [e.event_id for e in after.events] == [e.event_id for e in before.events]
    assert {bucket(r.customer_id, "cycle", 3) for r in records} == {0, 1, 2}


def test_flip_labels__flips_exactly_the_hash_segment():
    _, outcomes = _replay(300, 3)
    flipped = flip_labels(outcomes, 3)
    changed = {o.customer_id for o, f in zip(outcomes, flipped, strict=True) if o.label != f.label}
    assert changed == {o.customer_id for o in outcomes if bucket(o.customer_id, "drift", 3) == 0}
    assert 60 < len(changed) < 140  # about a third of 300


def test_compare__calibrated_within_bar_and_drift_apart():
    scores, outcomes = _replay(6000, 3)

    calibrated = compare(scores, outcomes, threshold=0.5, chunk_s=DAY_S, draws=50)
    drift = compare(scores, flip_labels(outcomes, 3), threshold=0.5, chunk_s=DAY_S, draws=50)

    # Three September chunks of ~2,000 joined customers; three August ones only estimated.
    assert (calibrated["labelled_chunks"], calibrated["estimate_only_chunks"]) == (3, 3)
    labelled = [r for r in calibrated["chunks"] if r["gap"] is not None]
    assert all(r["labelled"] == r["n"] > 1500 for r in labelled)
    assert calibrated["max_abs_gap"] <= BAR and calibrated["within_bar"]
    assert calibrated["ece_all_labelled"] < 0.03
    # Same scores, same estimates; the flipped labels pull the realized AUC far below them.
    assert [r["estimated_auc"] for r in drift["chunks"]] == [
        r["estimated_auc"] for r in calibrated["chunks"]
    ]
    assert drift["min_abs_gap"] > 0.1 and not drift["within_bar"]
