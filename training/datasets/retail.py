"""Online retail (UCI 352) as invoice-event sequences, churn and 90-day spend at cutoffs.

The adapter is one ``EventLogSpec`` (``DOCUMENT``, read by ``event_log.py``, ``cutoff_records.py``):
invoice lines are aggregated per (CustomerID, InvoiceNo) into one event at the invoice time:
kind ``purchase``, or ``return`` for cancellations (InvoiceNo starting with "C"). Fields:
``n_lines``, ``n_items`` (sum of |Quantity|), ``amount`` (sum of |Quantity| x UnitPrice, a
magnitude; the kind says which way the money went), ``mean_unit_price``, ``n_products``
(distinct StockCodes), ``country`` and ``gap_days`` (days since the customer's previous
invoice, None for the first). Every field uses that invoice and earlier ones only. Exact
duplicate lines are kept as they are in the source.

Rows without CustomerID (135,080 in the vendored file, 24.9%) cannot be attributed to anyone:
they are counted (``info["rows_without_customer_id"]`` and a log line), never used.

For a cutoff ``c`` (UTC midnight) the customers are those with a purchase before ``c``; the
record has ``as_of = c``, every invoice event with time < ``c``, and a profile computed from the
same past: ``country`` (most frequent invoice country), ``tenure_days`` and ``recency_days``
(days from the first / last purchase to ``c``), ``n_purchases``, ``n_returns``,
``net_spend`` (purchases minus returns) and ``spend_90d`` / ``purchases_90d`` (the 90 days
before ``c``). Label: churn = no purchase in ``[c, c + horizon)``; target: net spend in that
window (purchases minus returns), clipped at 0. Nothing at or after ``c`` reaches the features.

Splits: test = the records at ``test_cutoff`` (2011-09-09); train/val = the records at the
earlier ``train_cutoffs`` (2011-03-12 and 2011-06-10 by default; their label windows end before
the test cutoff), with ``val_fraction`` of the distinct customers (seeded) as validation, so one
customer's records at two cutoffs never straddle train and validation.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from crmrisk.training.datasets import cutoff_records, event_log
from crmrisk.training.datasets.event_log import EventLog
from crmrisk.training.datasets.event_log_spec import EventLogSpec
from crmrisk.training.datasets.records import CustomerRecord, DomainDataset

__all__ = [
    "DOCUMENT",
    "DOMAIN",
    "FILENAME",
    "SPEC",
    "TEST_CUTOFF",
    "TRAIN_CUTOFFS",
    "build_records",
    "event_spec",
    "invoices",
    "load",
]

log = logging.getLogger(__name__)

DOMAIN = "retail"
FILENAME = "online_retail.csv.gz"
TEST_CUTOFF = "2011-09-09"
TRAIN_CUTOFFS = ("2011-03-12", "2011-06-10")
HORIZON_DAYS = 90
RECENT_DAYS = 90

_LOG1P = {"transform": "signed_log1p"}
DOCUMENT: dict[str, Any] = {
    "domain": DOMAIN,
    "source": FILENAME,
    "customer_id": "CustomerID",
    "time": "InvoiceDate",
    "text_columns": ["InvoiceNo", "StockCode", "Country"],
    "columns": {"qty": "abs(Quantity)", "line_value": "abs(Quantity) * UnitPrice"},
    "events": {
        "group_by": "InvoiceNo",
        "kind": {"column": "InvoiceNo", "prefixes": {"C": "return"}, "default": "purchase"},
        "amount": "amount",
        "negative_kinds": ["return"],
        "fields": {
            "n_lines": {"agg": "count", **_LOG1P},
            "n_items": {"agg": "sum", "column": "qty", **_LOG1P},
            "amount": {"agg": "sum", "column": "line_value", **_LOG1P},
            "mean_unit_price": {"agg": "mean", "column": "UnitPrice", **_LOG1P},
            "n_products": {"agg": "nunique", "column": "StockCode", **_LOG1P},
            "country": {"agg": "first", "column": "Country", "fill": "unknown"},
            "gap_days": {"agg": "gap_days", **_LOG1P},
        },
    },
    "profile": {
        "country": {"agg": "mode", "column": "country"},
        "tenure_days": {"agg": "days_since_first", "kinds": ["purchase"], "transform": "none"},
        "recency_days": {"agg": "days_since_last", "kinds": ["purchase"], **_LOG1P},
        "n_purchases": {"agg": "count", "kinds": ["purchase"], **_LOG1P},
        "n_returns": {"agg": "count", "kinds": ["return"], **_LOG1P},
        "net_spend": {"agg": "sum", "column": "signed_amount", **_LOG1P},
        "spend_90d": {
            "agg": "sum",
            "column": "amount",
            "kinds": ["purchase"],
            "within_days": RECENT_DAYS,
            **_LOG1P,
        },
        "purchases_90d": {
            "agg": "count",
            "kinds": ["purchase"],
            "within_days": RECENT_DAYS,
            **_LOG1P,
        },
    },
    "population_kinds": ["purchase"],
    "label": {"rule": "inactivity", "horizon_days": HORIZON_DAYS, "kinds": ["purchase"]},
    "target": {"agg": "sum", "column": "signed_amount", "clip_min": 0.0},
    "cutoffs": {"train": list(TRAIN_CUTOFFS), "test": TEST_CUTOFF, "val_fraction": 0.2},
}


def event_spec(
    train_cutoffs: Sequence[str] = TRAIN_CUTOFFS,
    test_cutoff: str = TEST_CUTOFF,
    horizon_days: int = HORIZON_DAYS,
    val_fraction: float = 0.2,
) -> EventLogSpec:
    """The retail spec with other cutoffs or horizon."""
    document = {
        **DOCUMENT,
        "label": {**DOCUMENT["label"], "horizon_days": horizon_days},
        "cutoffs": {
            "train": list(train_cutoffs),
            "test": test_cutoff,
            "val_fraction": val_fraction,
        },
    }
    return EventLogSpec.model_validate(document)


SPEC = event_spec().feature_spec()


def invoices(lines: pd.DataFrame) -> EventLog:
    """Invoice events from invoice lines (rows without CustomerID counted, not used)."""
    return event_log.event_log(event_spec(), lines)


def build_records(
    data: EventLog, cutoff: str | datetime, horizon_days: int = HORIZON_DAYS
) -> list[CustomerRecord]:
    """Records as of ``cutoff`` for every customer with a purchase before it (split "train")."""
    spec = event_spec(train_cutoffs=("2000-01-01",), horizon_days=horizon_days)
    return cutoff_records.build_records(spec, data, cutoff)


def load(
    data_dir: Path,
    seed: int = 0,
    train_cutoffs: Sequence[str] = TRAIN_CUTOFFS,
    test_cutoff: str = TEST_CUTOFF,
    horizon_days: int = HORIZON_DAYS,
    val_fraction: float = 0.2,
) -> DomainDataset:
    """Retail records: train/val at ``train_cutoffs`` (customer-level split), test at the last."""
    if not train_cutoffs:
        raise ValueError("retail needs at least one training cutoff")
    spec = event_spec(train_cutoffs, test_cutoff, horizon_days, val_fraction)
    data = cutoff_records.load(spec, Path(data_dir), seed)
    info = data.info
    log.info(
        "retail: %d of %d invoice lines have no CustomerID and cannot be scored",
        info["rows_without_customer_id"],
        info["rows"],
    )
    info = {
        "source": FILENAME,
        "split": info["split"],
        "seed": seed,
        "train_cutoffs": list(train_cutoffs),
        "test_cutoff": test_cutoff,
        "horizon_days": horizon_days,
        "label": f"churn: no purchase in the {horizon_days} days after the cutoff",
        "target": f"net spend in the {horizon_days} days after the cutoff, clipped at 0",
        "rows_without_customer_id": info["rows_without_customer_id"],
        "lines": info["rows"],
        "invoices": info["events"],
    }
    # The generic loader's records and split, with this dataset's own account of them.
    return replace(
        data,
        has_target=True,
        info=info,
    )
