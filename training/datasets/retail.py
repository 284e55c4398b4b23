"""Online retail (UCI 352) as invoice-event sequences, churn and 90-day spend at cutoffs.

Invoice lines are aggregated per (CustomerID, InvoiceNo) into one event at the invoice time:
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

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from model.features import FeatureSpec, FieldRole
from stream.events import CustomerEvent
from training.datasets.records import (
    CustomerRecord,
    DomainDataset,
    group_by_split,
    validate_events,
)
from training.datasets.source import FileKey, file_key
from training.datasets.splits import group_splits

__all__ = [
    "DOMAIN",
    "FILENAME",
    "SPEC",
    "TEST_CUTOFF",
    "TRAIN_CUTOFFS",
    "Invoices",
    "build_records",
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
_DAY = np.timedelta64(1, "D")

SPEC = FeatureSpec(
    domain=DOMAIN,
    event_fields=(
        FieldRole("n_lines", "numeric", "signed_log1p"),
        FieldRole("n_items", "numeric", "signed_log1p"),
        FieldRole("amount", "numeric", "signed_log1p"),
        FieldRole("mean_unit_price", "numeric", "signed_log1p"),
        FieldRole("n_products", "numeric", "signed_log1p"),
        FieldRole("country", "categorical"),
        FieldRole("gap_days", "numeric", "signed_log1p"),
    ),
    profile_fields=(
        FieldRole("country", "categorical"),
        FieldRole("tenure_days", "numeric", "none"),
        FieldRole("recency_days", "numeric", "signed_log1p"),
        FieldRole("n_purchases", "numeric", "signed_log1p"),
        FieldRole("n_returns", "numeric", "signed_log1p"),
        FieldRole("net_spend", "numeric", "signed_log1p"),
        FieldRole("spend_90d", "numeric", "signed_log1p"),
        FieldRole("purchases_90d", "numeric", "signed_log1p"),
    ),
)


@dataclass(frozen=True)
class Invoices:
    """Invoice-level table (sorted by customer, time, invoice) and its events, row-aligned."""

    table: pd.DataFrame  # customer, invoice, time, is_return, amount, signed_amount, country
    events: tuple[CustomerEvent, ...]
    rows_without_customer_id: int
    lines: int


def read_lines(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"InvoiceNo": str, "StockCode": str, "Country": str})


def invoices(lines: pd.DataFrame) -> Invoices:
    """Aggregate invoice lines to invoice events per customer (rows without CustomerID counted)."""
    missing = {"InvoiceNo", "StockCode", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID"}
    missing -= set(lines.columns)
    if missing:
        raise ValueError(f"retail data lacks columns {sorted(missing)}")
    anonymous = int(lines["CustomerID"].isna().sum())
    known = lines[lines["CustomerID"].notna()]
    qty = known["Quantity"].abs()
    work = pd.DataFrame(
        {
            "customer": known["CustomerID"].astype("int64").astype(str),
            "invoice": known["InvoiceNo"].astype(str),
            "time": pd.to_datetime(known["InvoiceDate"], utc=True),
            "qty": qty,
            "value": qty * known["UnitPrice"],
            "price": known["UnitPrice"],
            "product": known["StockCode"],
            "country": known["Country"].fillna("unknown"),
        }
    )
    table = (
        work.groupby(["customer", "invoice"], sort=False)
        .agg(
            time=("time", "min"),
            n_lines=("qty", "size"),
            n_items=("qty", "sum"),
            amount=("value", "sum"),
            mean_unit_price=("price", "mean"),
            n_products=("product", "nunique"),
            country=("country", "first"),
        )
        .reset_index()
        .sort_values(["customer", "time", "invoice"], kind="stable")
        .reset_index(drop=True)
    )
    table["is_return"] = table["invoice"].str.startswith("C")
    table["signed_amount"] = np.where(table["is_return"], -table["amount"], table["amount"])
    gap = table.groupby("customer", sort=False)["time"].diff() / pd.Timedelta(days=1)
    table["gap_days"] = gap
    events = tuple(_events(table))
    return Invoices(table, events, anonymous, len(lines))


def _events(table: pd.DataFrame) -> list[CustomerEvent]:
    cols = {
        c: table[c].tolist()
        for c in ("customer", "invoice", "n_lines", "n_items", "amount", "mean_unit_price")
    }
    cols |= {c: table[c].tolist() for c in ("n_products", "country", "is_return", "gap_days")}
    times = table["time"].dt.to_pydatetime().tolist()
    out = []
    for i, cid in enumerate(cols["customer"]):
        gap = cols["gap_days"][i]
        out.append(
            dict(
                event_id=f"{cid}-{cols['invoice'][i]}",
                customer_id=cid,
                event_time=times[i].astimezone(UTC),
                domain=DOMAIN,
                kind="return" if cols["is_return"][i] else "purchase",
                fields={
                    "n_lines": int(cols["n_lines"][i]),
                    "n_items": float(cols["n_items"][i]),
                    "amount": round(float(cols["amount"][i]), 4),
                    "mean_unit_price": round(float(cols["mean_unit_price"][i]), 4),
                    "n_products": int(cols["n_products"][i]),
                    "country": cols["country"][i],
                    "gap_days": None if gap != gap else round(float(gap), 4),
                },
            )
        )
    return validate_events(out)


def _utc(day: str | datetime) -> datetime:
    moment = pd.Timestamp(day)
    moment = moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")
    return moment.to_pydatetime()


def build_records(
    data: Invoices, cutoff: str | datetime, horizon_days: int = HORIZON_DAYS
) -> list[CustomerRecord]:
    """Records as of ``cutoff`` for every customer with a purchase before it (split "train")."""
    as_of = _utc(cutoff)
    end = as_of + timedelta(days=horizon_days)
    table = data.table
    time = table["time"]
    past = table[time < as_of]
    purchases = past[~past["is_return"]]
    customers = purchases["customer"].unique()
    future = table[(time >= as_of) & (time < end)]
    bought = set(future.loc[~future["is_return"], "customer"])
    spend = future.groupby("customer")["signed_amount"].sum().clip(lower=0.0)

    profile = _profiles(past, purchases, as_of)
    # groupby().indices are positions within ``past``; map them to rows of ``table``/events.
    rows = past.index.to_numpy()
    positions = past.groupby("customer", sort=False).indices
    records = []
    for cid in customers:
        events = [data.events[j] for j in rows[positions[cid]]]
        records.append(
            CustomerRecord(
                customer_id=cid,
                profile=profile[cid],
                events=events,
                label=int(cid not in bought),
                target=float(spend.get(cid, 0.0)),
                split="train",
                as_of=as_of,
            )
        )
    return records


def _profiles(
    past: pd.DataFrame, purchases: pd.DataFrame, as_of: datetime
) -> dict[str, dict[str, float | int | str]]:
    cutoff = pd.Timestamp(as_of)
    recent = purchases[purchases["time"] >= cutoff - pd.Timedelta(days=RECENT_DAYS)]
    by = purchases.groupby("customer")
    frame = pd.DataFrame(
        {
            "tenure_days": (cutoff - by["time"].min()) / pd.Timedelta(days=1),
            "recency_days": (cutoff - by["time"].max()) / pd.Timedelta(days=1),
            "n_purchases": by.size(),
        }
    )
    frame["n_returns"] = past[past["is_return"]].groupby("customer").size()
    frame["net_spend"] = past.groupby("customer")["signed_amount"].sum()
    frame["spend_90d"] = recent.groupby("customer")["amount"].sum()
    frame["purchases_90d"] = recent.groupby("customer").size()
    frame = frame.fillna({"n_returns": 0, "spend_90d": 0.0, "purchases_90d": 0})
    # Most frequent invoice country; ties go to the alphabetically first (deterministic).
    country = (
        past.groupby(["customer", "country"])
        .size()
        .reset_index(name="n")
        .sort_values(["customer", "n", "country"], ascending=[True, False, True])
        .drop_duplicates("customer")
        .set_index("customer")["country"]
    )
    frame["country"] = country
    out = {}
    for cid, row in zip(frame.index, frame.itertuples(index=False), strict=True):
        out[cid] = {
            "country": row.country,
            "tenure_days": round(float(row.tenure_days), 4),
            "recency_days": round(float(row.recency_days), 4),
            "n_purchases": int(row.n_purchases),
            "n_returns": int(row.n_returns),
            "net_spend": round(float(row.net_spend), 4),
            "spend_90d": round(float(row.spend_90d), 4),
            "purchases_90d": int(row.purchases_90d),
        }
    return out


@functools.lru_cache(maxsize=2)
def _cached_invoices(key: FileKey) -> Invoices:
    return invoices(read_lines(Path(key[0])))


@functools.lru_cache(maxsize=8)
def _cached_records(key: FileKey, cutoff: str, horizon_days: int) -> tuple[CustomerRecord, ...]:
    return tuple(build_records(_cached_invoices(key), cutoff, horizon_days))


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
    test_at = _utc(test_cutoff)
    for cutoff in train_cutoffs:
        if _utc(cutoff) + timedelta(days=horizon_days) > test_at:
            raise ValueError(
                f"training cutoff {cutoff} + {horizon_days} days runs past the test cutoff "
                f"{test_cutoff}: its labels would overlap the test period"
            )
    key = file_key(Path(data_dir) / FILENAME)
    data = _cached_invoices(key)
    last = data.table["time"].max()
    if pd.Timestamp(test_at) + pd.Timedelta(days=horizon_days) > last + pd.Timedelta(days=1):
        raise ValueError(
            f"test cutoff {test_cutoff} + {horizon_days} days runs past the data ({last})"
        )
    log.info(
        "retail: %d of %d invoice lines have no CustomerID and cannot be scored",
        data.rows_without_customer_id,
        data.lines,
    )
    train_records = [r for c in train_cutoffs for r in _cached_records(key, c, horizon_days)]
    names = group_splits([r.customer_id for r in train_records], seed, val_fraction)
    groups = group_by_split(train_records, names)
    test = [r.with_split("test") for r in _cached_records(key, test_cutoff, horizon_days)]
    return DomainDataset(
        domain=DOMAIN,
        spec=SPEC,
        train=groups["train"],
        val=groups["val"],
        test=test,
        has_target=True,
        info={
            "source": FILENAME,
            "split": "test at the test cutoff; train/val at earlier cutoffs, "
            f"{val_fraction:.0%} of customers (seeded) to validation",
            "seed": seed,
            "train_cutoffs": list(train_cutoffs),
            "test_cutoff": test_cutoff,
            "horizon_days": horizon_days,
            "label": f"churn: no purchase in the {horizon_days} days after the cutoff",
            "target": f"net spend in the {horizon_days} days after the cutoff, clipped at 0",
            "rows_without_customer_id": data.rows_without_customer_id,
            "lines": data.lines,
            "invoices": len(data.table),
        },
    )
