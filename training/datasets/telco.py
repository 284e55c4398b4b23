"""Telco customer churn (IBM sample) as a sequence of field-group tokens.

The data is one account snapshot per customer with no time order, so the sequence is made of
field groups, one event each, all at one nominal ``SNAPSHOT`` time (the data has no date), in
this fixed order (event ids ``<customer>-<i>-<kind>`` sort the same way, so the serving
store's tie-break by event id keeps it):

0. ``demographics``: gender, SeniorCitizen, Partner, Dependents
1. ``phone``: PhoneService, MultipleLines
2. ``internet``: InternetService, OnlineSecurity, OnlineBackup, DeviceProtection, TechSupport
3. ``streaming``: StreamingTV, StreamingMovies
4. ``contract``: Contract, PaperlessBilling, PaymentMethod
5. ``charges``: tenure, MonthlyCharges, TotalCharges

Profile (the attention query): gender, SeniorCitizen, Partner, Dependents, tenure.
``SeniorCitizen`` 0/1 becomes "No"/"Yes" like the other flags. ``TotalCharges`` is blank for
the 11 customers with tenure 0: it becomes None (the encoder's missing indicator), the rows are
kept. Label: ``Churn == "Yes"``. No continuous target.

Split: stratified random 80/20 test with ``seed``, validation = stratified 20% of the rest.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from model.features import FeatureSpec, FieldRole
from training.datasets.records import (
    CustomerRecord,
    DomainDataset,
    group_by_split,
    validate_events,
)
from training.datasets.source import FileKey, file_key
from training.datasets.splits import random_splits

__all__ = ["DOMAIN", "FILENAME", "GROUPS", "SNAPSHOT", "SPEC", "build_records", "load"]

DOMAIN = "telco"
FILENAME = "telco_churn.csv.gz"
SNAPSHOT = datetime(2018, 1, 1, tzinfo=UTC)
NUMERIC = ("tenure", "MonthlyCharges", "TotalCharges")
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("demographics", ("gender", "SeniorCitizen", "Partner", "Dependents")),
    ("phone", ("PhoneService", "MultipleLines")),
    (
        "internet",
        ("InternetService", "OnlineSecurity", "OnlineBackup", "DeviceProtection", "TechSupport"),
    ),
    ("streaming", ("StreamingTV", "StreamingMovies")),
    ("contract", ("Contract", "PaperlessBilling", "PaymentMethod")),
    ("charges", NUMERIC),
)
PROFILE = ("gender", "SeniorCitizen", "Partner", "Dependents", "tenure")

SPEC = FeatureSpec(
    domain=DOMAIN,
    event_fields=tuple(
        FieldRole(name, "numeric", "none" if name == "tenure" else "auto")
        if name in NUMERIC
        else FieldRole(name, "categorical")
        for _, names in GROUPS
        for name in names
    ),
    profile_fields=tuple(
        FieldRole(name, "numeric", "none") if name in NUMERIC else FieldRole(name, "categorical")
        for name in PROFILE
    ),
)


def _clean(frame: pd.DataFrame) -> pd.DataFrame:
    wanted = {"customerID", "Churn", *PROFILE, *(n for _, names in GROUPS for n in names)}
    missing = wanted - set(frame.columns)
    if missing:
        raise ValueError(f"telco data lacks columns {sorted(missing)}")
    out = frame.copy()
    out["SeniorCitizen"] = np.where(out["SeniorCitizen"].astype(int) == 1, "Yes", "No")
    # Blank TotalCharges (tenure 0, nothing billed yet) -> NaN -> None in the event fields.
    out["TotalCharges"] = pd.to_numeric(out["TotalCharges"], errors="coerce")
    return out


def _value(v: object) -> object:
    if isinstance(v, float) and np.isnan(v):
        return None
    if isinstance(v, np.generic):
        return v.item()
    return v


def build_records(frame: pd.DataFrame) -> list[CustomerRecord]:
    """One record per row (split "train" as a placeholder; ``load`` assigns splits)."""
    data = _clean(frame)
    columns = {c: [_value(v) for v in data[c].tolist()] for c in data.columns}
    labels = (data["Churn"] == "Yes").astype(int).tolist()
    ids = [str(cid) for cid in columns["customerID"]]
    documents = [
        {
            "event_id": f"{cid}-{position}-{kind}",
            "customer_id": cid,
            "event_time": SNAPSHOT,
            "domain": DOMAIN,
            "kind": kind,
            "fields": {name: columns[name][i] for name in names},
        }
        for i, cid in enumerate(ids)
        for position, (kind, names) in enumerate(GROUPS)
    ]
    events = validate_events(documents)
    steps = len(GROUPS)
    records = []
    for i, cid in enumerate(ids):
        profile = {name: columns[name][i] for name in PROFILE}
        mine = events[i * steps : (i + 1) * steps]
        records.append(CustomerRecord(cid, profile, mine, labels[i], None, "train", SNAPSHOT))
    return records


@functools.lru_cache(maxsize=2)
def _cached_records(key: FileKey) -> tuple[CustomerRecord, ...]:
    return tuple(build_records(pd.read_csv(key[0])))


def load(data_dir: Path, seed: int = 0) -> DomainDataset:
    """Telco records split stratified 80/20 (test) then 80/20 (train/val) with ``seed``."""
    records = _cached_records(file_key(Path(data_dir) / FILENAME))
    split = group_by_split(records, random_splits([r.label for r in records], seed))
    return DomainDataset(
        domain=DOMAIN,
        spec=SPEC,
        train=split["train"],
        val=split["val"],
        test=split["test"],
        has_target=False,
        info={
            "source": FILENAME,
            "split": "random stratified: 20% test, then 20% of the rest validation",
            "seed": seed,
            "snapshot": SNAPSHOT.isoformat(),
            "total_charges_blank": sum(r.events[5].fields["TotalCharges"] is None for r in records),
        },
    )
