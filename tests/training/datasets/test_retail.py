"""Retail: nothing after a cutoff reaches features, churn/target rules, unscorable rows counted."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crmrisk.training.datasets import retail

CUTOFF = "2011-06-10"
DATA = Path(__file__).resolve().parents[3] / "data"


def _lines() -> pd.DataFrame:
    """Synthetic invoice lines: 40 customers, purchases and a few returns, plus anonymous rows."""
    rng = np.random.default_rng(7)
    rows = []
    for c in range(40):
        for k in range(int(rng.integers(1, 9))):
            day = pd.Timestamp("2011-01-03") + pd.Timedelta(days=int(rng.integers(0, 300)))
            invoice = f"{'C' if k == 3 else ''}5{c:03d}{k:02d}"
            for line in range(int(rng.integers(1, 4))):
                quantity = int(rng.integers(1, 12)) * (-1 if invoice.startswith("C") else 1)
                rows.append(
                    {
                        "InvoiceNo": invoice,
                        "StockCode": f"P{line}",
                        "Description": "thing",
                        "Quantity": quantity,
                        "InvoiceDate": (day + pd.Timedelta(hours=10)).isoformat(sep=" "),
                        "UnitPrice": float(rng.integers(1, 20)),
                        "CustomerID": 12000.0 + c,
                        "Country": "France" if c % 5 == 0 else "United Kingdom",
                    }
                )
    for i in range(13):
        rows.append(
            {
                "InvoiceNo": f"599{i:03d}",
                "StockCode": "X",
                "Description": None,
                "Quantity": 1,
                "InvoiceDate": "2011-05-01 09:00:00",
                "UnitPrice": 0.0,
                "CustomerID": np.nan,
                "Country": "United Kingdom",
            }
        )
    return pd.DataFrame(rows)


def _features(records):
    return {
        r.customer_id: (r.profile, [(e.event_id, e.kind, e.fields) for e in r.events])
        for r in records
    }


def test_cutoff__appended_future_invoices_change_no_feature():
    lines = _lines()
    before = retail.build_records(retail.invoices(lines), CUTOFF)
    future = lines.sample(60, random_state=1).copy()
    future["InvoiceNo"] = [f"9{i:05d}" for i in range(len(future))]
    future["InvoiceDate"] = "2011-06-10 08:00:00"  # the first morning after the cutoff
    future.loc[future.index[:10], "InvoiceNo"] = [f"C9{i:05d}" for i in range(10)]
    future.loc[future.index[:10], "Quantity"] = -5
    stranger = future.iloc[:3].copy()
    stranger["CustomerID"] = 99999.0  # a brand-new customer, only after the cutoff
    after = retail.build_records(
        retail.invoices(pd.concat([lines, future, stranger], ignore_index=True)), CUTOFF
    )
    assert _features(after) == _features(before)
    assert "99999" not in {r.customer_id for r in after}
    # the labels and targets are allowed to see the future, and here they do
    assert [r.label for r in after] != [r.label for r in before] or [r.target for r in after] != [
        r.target for r in before
    ]


def test_cutoff__a_past_invoice_does_change_features():
    """The check above can fail: the same kind of change before the cutoff is visible."""
    lines = _lines()
    before = retail.build_records(retail.invoices(lines), CUTOFF)
    past = lines[lines["CustomerID"].notna()].head(2).copy()
    past["InvoiceNo"] = "900000"
    past["InvoiceDate"] = "2011-06-09 23:00:00"
    after = retail.build_records(retail.invoices(pd.concat([lines, past])), CUTOFF)
    assert _features(after) != _features(before)


def test_build_records__label_target_and_events_follow_the_rules():
    lines = _lines()
    data = retail.invoices(lines)
    as_of = datetime(2011, 6, 10, tzinfo=UTC)
    end = pd.Timestamp(as_of) + pd.Timedelta(days=90)
    table = data.table
    records = retail.build_records(data, CUTOFF)
    assert records
    for record in records:
        mine = table[table["customer"] == record.customer_id]
        past = mine[mine["time"] < pd.Timestamp(as_of)]
        window = mine[(mine["time"] >= pd.Timestamp(as_of)) & (mine["time"] < end)]
        is_return, future_return = past["kind"] == "return", window["kind"] == "return"
        assert (~is_return).any()  # customers: a purchase before the cutoff
        assert [e.event_id.split("-", 1)[1] for e in record.events] == past["key"].tolist()
        assert all(e.event_time < as_of for e in record.events)
        assert {e.kind for e in record.events} <= {"purchase", "return"}
        assert record.label == int(not (~future_return).any())
        assert record.target == pytest.approx(max(window["signed_amount"].sum(), 0.0))
        assert record.as_of == as_of
        assert record.profile["n_purchases"] == int((~is_return).sum())
    returns = [e for r in records for e in r.events if e.kind == "return"]
    assert returns and all(e.event_id.split("-", 1)[1].startswith("C") for e in returns)


def test_invoices__rows_without_customer_id_are_counted_not_used(tmp_path, caplog):
    lines = _lines()
    data = retail.invoices(lines)
    assert data.dropped["rows_without_customer_id"] == 13
    assert data.rows == len(lines)
    assert not data.table["key"].str.startswith("599").any()
    lines.to_csv(tmp_path / retail.FILENAME, index=False)
    with caplog.at_level(logging.INFO, logger="crmrisk.training.datasets.retail"):
        loaded = retail.load(tmp_path, train_cutoffs=("2011-04-01",), test_cutoff="2011-07-01")
    assert loaded.info["rows_without_customer_id"] == 13
    assert "13 of" in caplog.text
    assert loaded.has_target and loaded.test and loaded.train


def test_load__validation_is_customer_level_and_cutoffs_are_checked(tmp_path):
    _lines().to_csv(tmp_path / retail.FILENAME, index=False)
    data = retail.load(
        tmp_path, train_cutoffs=("2011-03-01", "2011-05-01"), test_cutoff="2011-08-01"
    )
    train_ids = {r.customer_id for r in data.train}
    val_ids = {r.customer_id for r in data.val}
    assert not train_ids & val_ids
    assert {r.as_of.date().isoformat() for r in data.train} == {"2011-03-01", "2011-05-01"}
    assert {r.as_of.date().isoformat() for r in data.test} == {"2011-08-01"}
    with pytest.raises(ValueError, match="overlap the test period"):
        retail.load(tmp_path, train_cutoffs=("2011-06-01",), test_cutoff="2011-08-01")


# sha256 of every record of the vendored file (seed 0, default cutoffs) as the hand-written
# adapter built them before retail became an EventLogSpec (commit bbe4dc2); see _digest.
VENDORED_DIGEST = "098d1ea1f9029163d0d6bb5953563cf111f75c506ade59f9e3e695f377751031"


def _digest(data) -> str:
    h = hashlib.sha256()
    for name in ("train", "val", "test"):
        for r in data.splits()[name]:
            row = (
                r.customer_id,
                r.profile,
                [e.model_dump(mode="json") for e in r.events],
                r.label,
                r.target,
                r.split,
                r.as_of.isoformat(),
            )
            h.update(json.dumps(row, sort_keys=True, default=str).encode())
    return h.hexdigest()


def test_load__vendored_records_are_unchanged_by_the_spec_mechanism():
    data = retail.load(DATA)
    assert (len(data.train), len(data.val), len(data.test)) == (3720, 941, 3362)
    assert data.info["rows_without_customer_id"] == 135_080
    assert _digest(data) == VENDORED_DIGEST
