"""Telco: field-group tokens in a fixed order at one time, TotalCharges blanks kept as missing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from crmrisk.stream.transform import window as serving_window
from crmrisk.training.datasets import generic, telco
from crmrisk.training.datasets.arrays import fit_encoder, to_arrays

DATA = Path(__file__).resolve().parents[3] / "data"


def _records(frame):
    """One record per row (split "train" until ``load`` assigns splits)."""
    return generic.build_records(telco.GENERIC_SPEC, frame)[0]


def _frame() -> pd.DataFrame:
    frame = pd.read_csv(DATA / telco.FILENAME)
    blanks = frame[frame["TotalCharges"].str.strip() == ""]
    return pd.concat([frame.head(200), blanks]).reset_index(drop=True)


def test_build_records__blank_total_charges_are_kept_as_missing():
    frame = _frame()
    records = _records(frame)
    assert len(records) == len(frame)
    blank = [r for r in records if r.events[-1].fields["TotalCharges"] is None]
    assert len(blank) == 11
    assert all(r.profile["tenure"] == 0 for r in blank)
    encoder = fit_encoder(telco.SPEC, records)
    arrays = to_arrays(blank, encoder, window=32)
    names = encoder.event_feature_names()
    charges = arrays.events[:, -1]
    assert (charges[:, names.index("TotalCharges:missing")] == 1).all()
    assert (charges[:, names.index("TotalCharges")] == 0).all()
    assert np.isfinite(arrays.events).all()


def test_build_records__groups_in_fixed_order_that_the_serving_store_keeps():
    records = _records(_frame().head(20))
    expected = [kind for kind, _ in telco.GROUPS]
    for record in records:
        assert [e.kind for e in record.events] == expected
        assert len({e.event_time for e in record.events}) == 1
        served = serving_window(list(reversed(record.events)), 32)
        assert [e.kind for e in served] == expected


def test_build_records__fields_and_label():
    frame = _frame().head(5)
    record = _records(frame)[0]
    row = frame.iloc[0]
    fields = {k: v for e in record.events for k, v in e.fields.items()}
    assert fields["Contract"] == row["Contract"]
    assert fields["MonthlyCharges"] == row["MonthlyCharges"]
    assert fields["SeniorCitizen"] in ("Yes", "No")
    assert record.label == int(row["Churn"] == "Yes")
    assert set(record.profile) == {"gender", "SeniorCitizen", "Partner", "Dependents", "tenure"}
