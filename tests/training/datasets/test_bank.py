"""Bank: no duration by default, derived dates, the event design, time and random splits."""

from __future__ import annotations

import doctest
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crmrisk.training.datasets import bank
from crmrisk.training.datasets.arrays import fit_encoder, to_arrays

DATA = Path(__file__).resolve().parents[3] / "data"


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return pd.read_csv(DATA / bank.FILENAME)


def _sample(frame: pd.DataFrame) -> pd.DataFrame:
    contacted = frame[frame["pdays"] != bank.NOT_CONTACTED].head(30)
    return pd.concat([frame.head(200), contacted]).reset_index(drop=True)


def test_doctests():
    assert doctest.testmod(bank).failed == 0


def test_duration__absent_by_default_present_only_when_asked(frame):
    sample = _sample(frame)
    plain = bank.build_records(sample)
    assert all("duration" not in e.fields for r in plain for e in r.events)
    names = fit_encoder(bank.spec(), plain).event_feature_names()
    assert not any(n.startswith("duration") for n in names)
    leaky = bank.build_records(sample, include_duration=True)
    contact = leaky[0].events[-1]
    assert contact.kind == "contact" and contact.fields["duration"] == sample.loc[0, "duration"]
    assert "duration" in fit_encoder(bank.spec(True), leaky).event_feature_names()


def test_contact_dates__span_may_2008_to_nov_2010_and_match_month_and_weekday(frame):
    dates = bank.contact_dates(frame["month"], frame["day_of_week"])
    assert dates[0].strftime("%Y-%m") == "2008-05"
    assert dates[-1].strftime("%Y-%m") == "2010-11"
    months = [d.strftime("%b").lower() for d in dates]
    weekdays = [d.strftime("%a").lower() for d in dates]
    assert months == frame["month"].tolist()
    assert weekdays == frame["day_of_week"].tolist()
    years = np.array([d.year for d in dates])
    assert (np.diff(years) >= 0).all()


def test_build_records__events_precede_the_contact(frame):
    records = bank.build_records(_sample(frame))
    for record in records:
        kinds = [e.kind for e in record.events]
        assert kinds[-2:] == ["market", "contact"]
        assert kinds[:-2] in ([], ["previous_campaign"])
        assert all(e.event_time <= record.as_of for e in record.events)
        times = [e.event_time for e in record.events]
        assert times == sorted(times)
    contacted = [r for r in records if r.events[0].kind == "previous_campaign"]
    assert contacted and all(r.events[0].fields["days_since"] is not None for r in contacted[-30:])
    assert set(records[0].profile) == set(bank.PROFILE)


def test_load__time_split_is_row_order(tmp_path, frame):
    frame.head(1000).to_csv(tmp_path / bank.FILENAME, index=False)
    data = bank.load(tmp_path)
    rows = {n: [int(r.customer_id[1:]) for r in rs] for n, rs in data.splits().items()}
    assert rows["train"] == list(range(640))
    assert rows["val"] == list(range(640, 800))
    assert rows["test"] == list(range(800, 1000))
    random = bank.load(tmp_path, seed=3, split="random")
    assert len(random.test) == 200
    assert sorted(int(r.customer_id[1:]) for r in random.test) != rows["test"]
    with pytest.raises(ValueError, match="split"):
        bank.load(tmp_path, split="weekly")
    mixed = bank.load(tmp_path, seed=0, val="random")
    assert [int(r.customer_id[1:]) for r in mixed.test] == rows["test"]
    head = sorted(int(r.customer_id[1:]) for r in mixed.train + mixed.val)
    assert head == list(range(800)) and len(mixed.val) == 160
    assert min(int(r.customer_id[1:]) for r in mixed.val) < 640  # not just the tail


def test_encoder__macro_indicators_extrapolate_without_clipping(frame):
    records = bank.build_records(_sample(frame))
    encoder = fit_encoder(bank.spec(), records)
    column = encoder.event_feature_names().index("euribor3m")
    low = to_arrays(records[:1], encoder, 32).events  # fitted range: ~4.8-4.9 in May 2008
    market = {name: 0.0 for name in bank.MACRO} | {"euribor3m": 0.6}
    value = encoder.encode_event("market", market)[column]
    assert value < low[0, 0, column] - 1
    assert datetime(2008, 5, 1, tzinfo=UTC) <= records[0].as_of
