"""Credit default: month order, undocumented codes, encoder fitted on train only, splits."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crmrisk.training.datasets import credit, generic
from crmrisk.training.datasets.arrays import fit_encoder, to_arrays

DATA = Path(__file__).resolve().parents[3] / "data"


def _records(frame):
    """One record per row (split "train" until ``load`` assigns splits)."""
    return generic.build_records(credit.GENERIC_SPEC, frame)[0]


def _frame(rows: int = 300) -> pd.DataFrame:
    return pd.read_csv(DATA / credit.FILENAME, nrows=rows)


def test_build_records__months_oldest_first_april_is_pay_6():
    frame = _frame(50)
    records = _records(frame)
    row = frame.iloc[0]
    events = records[0].events
    assert [e.event_time.strftime("%Y-%m") for e in events] == [
        "2005-04", "2005-05", "2005-06", "2005-07", "2005-08", "2005-09",
    ]  # fmt: skip
    first, last = events[0].fields, events[-1].fields
    assert (first["pay_status"], first["bill_amt"], first["pay_amt"]) == (
        row["PAY_6"], row["BILL_AMT6"], row["PAY_AMT6"],
    )  # fmt: skip
    assert (last["pay_status"], last["bill_amt"], last["pay_amt"]) == (
        row["PAY_0"], row["BILL_AMT1"], row["PAY_AMT1"],
    )  # fmt: skip
    for i, column in enumerate(["PAY_5", "PAY_4", "PAY_3", "PAY_2"], start=1):
        assert events[i].fields["pay_status"] == row[column]
    assert all(e.event_time < records[0].as_of for e in events)
    assert records[0].as_of == datetime(2005, 10, 1, tzinfo=UTC)
    assert records[0].label == row["default payment next month"]


def test_build_records__undocumented_codes_are_explicit_categories():
    frame = _frame(5).copy()
    frame.loc[0, ["EDUCATION", "MARRIAGE"]] = [0, 0]
    frame.loc[1, ["EDUCATION", "MARRIAGE"]] = [5, 3]
    frame.loc[2, ["EDUCATION", "PAY_0"]] = [4, -2]
    records = _records(frame)
    assert [r.profile["EDUCATION"] for r in records[:3]] == [
        "other_unknown",
        "other_unknown",
        "other",
    ]
    assert [r.profile["MARRIAGE"] for r in records[:2]] == ["unknown", "other"]
    assert records[2].events[-1].fields["pay_status"] == -2


def test_encoder__pay_status_is_categorical_and_numeric():
    records = _records(_frame(300))
    encoder = fit_encoder(credit.SPEC, records)
    names = encoder.event_feature_names()
    assert {"pay_status=-2", "pay_status=-1", "pay_status=0", "pay_status"} <= set(names)


def test_encoder__value_seen_only_in_test_maps_to_unknown():
    records = _records(_frame(300))
    train, test = records[:250], records[250:]
    # a SEX code nobody in train has, present only in a test customer
    odd = test[0]
    odd.profile["SEX"] = "prefer_not_to_say"
    encoder = fit_encoder(credit.SPEC, train)
    vector = to_arrays([odd], encoder, window=32).profile[0]
    names = encoder.profile_feature_names()
    assert "SEX=prefer_not_to_say" not in names
    assert vector[names.index("SEX=<unknown>")] == 1.0


def test_load__splits_stratified_deterministic_and_disjoint(tmp_path):
    frame = _frame(1000)
    frame.to_csv(tmp_path / credit.FILENAME, index=False)
    a, b, other = (credit.load(tmp_path, seed=s) for s in (0, 0, 1))
    ids = {name: {r.customer_id for r in rs} for name, rs in a.splits().items()}
    assert sum(len(v) for v in ids.values()) == 1000
    assert not (ids["train"] & ids["test"]) and not (ids["val"] & ids["test"])
    assert len(ids["test"]) == 200 and len(ids["val"]) == 160
    assert [r.customer_id for r in a.test] == [r.customer_id for r in b.test]
    assert [r.customer_id for r in a.test] != [r.customer_id for r in other.test]
    rate = frame["default payment next month"].mean()
    for records in a.splits().values():
        assert np.mean([r.label for r in records]) == pytest.approx(rate, abs=0.02)
    assert all(r.split == name for name, rs in a.splits().items() for r in rs)
