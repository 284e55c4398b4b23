"""Records at cutoffs from an event log: derived labels and targets, no leakage, load."""

from __future__ import annotations

import copy

import pandas as pd
import pytest

from crmrisk.training.datasets import DataError, EventLogSpec, load_domain
from crmrisk.training.datasets.cutoff_records import build_records
from crmrisk.training.datasets.event_log import event_log
from crmrisk.training.datasets.synthetic_log import SPEC, order_log

CUTOFF = "2023-07-01"


def _spec(**changes) -> EventLogSpec:
    document = copy.deepcopy(SPEC)
    document.update(changes)
    return EventLogSpec.model_validate(document)


def _features(records):
    return {
        r.customer_id: (r.profile, [(e.event_id, e.kind, e.fields) for e in r.events])
        for r in records
    }


def test_cutoff__appended_future_rows_change_no_feature():
    spec, lines = _spec(), order_log(120, seed=3)
    before = build_records(spec, event_log(spec, lines), CUTOFF)
    future = lines.sample(200, random_state=1).copy()
    future["placed_at"] = "2023-07-01 00:00:00"  # the first instant of the cutoff day
    future["order_ref"] = [f"f{i // 2}" for i in range(len(future))]
    future.loc[future.index[:40], "state"] = "refunded"
    stranger = future.iloc[:5].copy()
    stranger["client_ref"] = "new-customer"
    grown = pd.concat([lines, future, stranger], ignore_index=True)
    after = build_records(spec, event_log(spec, grown), CUTOFF)
    assert _features(after) == _features(before)
    assert "new-customer" not in {r.customer_id for r in after}
    # Labels and targets may look past the cutoff, and here they do.
    assert [r.target for r in after] != [r.target for r in before]


def test_cutoff__a_row_just_before_it_does_change_features():
    """The check above can fail: the same change one second before the cutoff shows."""
    spec, lines = _spec(), order_log(120, seed=3)
    before = build_records(spec, event_log(spec, lines), CUTOFF)
    past = lines.head(3).copy()
    past["placed_at"], past["order_ref"] = "2023-06-30 23:59:59", "late"
    after = build_records(spec, event_log(spec, pd.concat([lines, past])), CUTOFF)
    assert _features(after) != _features(before)


def _future_table(spec, data, days):
    t = data.table
    start = pd.Timestamp(CUTOFF, tz="UTC")
    return t[(t["time"] >= start) & (t["time"] < start + pd.Timedelta(days=days))]


def test_build_records__threshold_label_and_target_follow_the_rule():
    spec = _spec()
    data = event_log(spec, order_log(150, seed=1))
    records = build_records(spec, data, CUTOFF)
    window = _future_table(spec, data, 60).groupby("customer")["signed_amount"].sum()
    past = data.table[data.table["time"] < pd.Timestamp(CUTOFF, tz="UTC")]
    assert {r.customer_id for r in records} == set(past.loc[past["kind"] == "order", "customer"])
    assert 0 < sum(r.label for r in records) < len(records)
    for r in records:
        spend = float(window.get(r.customer_id, 0.0))
        assert r.label == int(spend < 25)
        assert r.target == pytest.approx(max(spend, 0.0))
        assert all(e.event_time < r.as_of for e in r.events)
        mine = past[past["customer"] == r.customer_id]
        assert [e.event_id for e in r.events] == [f"{r.customer_id}-{k}" for k in mine["key"]]
        assert r.profile["spend"] == pytest.approx(mine["signed_amount"].sum(), abs=1e-3)


def test_build_records__inactivity_and_column_labels():
    inactive = _spec(label={"rule": "inactivity", "horizon_days": 30, "kinds": ["order"]})
    lines = order_log(150, seed=2)
    data = event_log(inactive, lines)
    active = set(_future_table(inactive, data, 30).query("kind == 'order'")["customer"])
    for r in build_records(inactive, data, CUTOFF):
        assert r.label == int(r.customer_id not in active)

    refunded = _spec(label={"rule": "column", "horizon_days": 45, "column": "state",
                            "positive": "REFUNDED"})  # fmt: skip
    data = event_log(refunded, lines)
    hit = set(_future_table(refunded, data, 45).query("kind == 'refund'")["customer"])
    records = build_records(refunded, data, CUTOFF)
    assert hit and [r.label for r in records] == [int(r.customer_id in hit) for r in records]


@pytest.mark.parametrize("suffix", ["csv", "jsonl", "parquet"])
def test_load__csv_jsonl_and_parquet_give_the_same_records(tmp_path, suffix):
    lines = order_log(100, seed=5)
    path = tmp_path / f"orders.{suffix}"
    if suffix == "csv":
        lines.to_csv(path, index=False)
    elif suffix == "jsonl":
        lines.to_json(path, orient="records", lines=True)
    else:
        lines.to_parquet(path)
    data = load_domain("generic", tmp_path, 0, spec={**SPEC, "source": path.name})
    reference = build_records(_spec(), event_log(_spec(), lines), "2023-09-15")
    assert _features(data.test) == _features(reference)
    assert [r.label for r in data.test] == [r.label for r in reference]
    assert {r.as_of.date().isoformat() for r in data.train + data.val} == {
        "2023-05-01",
        "2023-07-01",
    }
    assert not {r.customer_id for r in data.train} & {r.customer_id for r in data.val}
    assert data.has_target and data.info["rows"] == len(lines)


def test_load__user_mistakes_are_data_errors_naming_the_fix(tmp_path):
    order_log(60, seed=6).to_csv(tmp_path / "orders.csv", index=False)
    with pytest.raises(DataError, match="data file not found"):
        load_domain("generic", tmp_path, spec={**SPEC, "source": "missing.csv"})
    with pytest.raises(DataError, match=r"columns \['customer'\] named in the spec"):
        load_domain("generic", tmp_path, spec={**SPEC, "customer_id": "customer"})
    late = {**SPEC["cutoffs"], "train": ["2023-08-01"]}
    with pytest.raises(DataError, match="overlap the test period"):
        load_domain("generic", tmp_path, spec={**SPEC, "cutoffs": late})
    never = {**SPEC["label"], "value": -1e9}
    with pytest.raises(DataError, match="have label 0: change the label rule"):
        load_domain("generic", tmp_path, spec={**SPEC, "label": never})
