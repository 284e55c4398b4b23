"""Credit card default (UCI 350, Taiwan 2005) as monthly statement sequences.

Per customer: a profile (LIMIT_BAL, SEX, EDUCATION, MARRIAGE, AGE) and six ``statement`` events,
oldest first, on the last day of each month: April 2005 is PAY_6 / BILL_AMT6 / PAY_AMT6, ...,
September 2005 is PAY_0 / BILL_AMT1 / PAY_AMT1. ``as_of`` is 2005-10-01; the label is
``default payment next month`` (October 2005). No continuous target.

Statement fields: ``pay_status`` (the PAY_* code, encoded both as a category and as a number),
``bill_amt``, ``pay_amt`` (NT dollars, signed_log1p) and ``bill_to_limit`` (bill / LIMIT_BAL,
known to the issuer at statement time).

Undocumented codes, handled explicitly:
- EDUCATION 1..4 are graduate_school / university / high_school / other; the undocumented 0, 5
  and 6 (345 rows) become one category ``other_unknown`` (kept apart from the documented 4).
- MARRIAGE 1..3 are married / single / other; the undocumented 0 (54 rows) becomes ``unknown``.
- PAY_*: -1 (paid duly) and 1..9 (months of delay) are documented; -2 (no consumption) and 0
  (revolving credit in use) are not, but are frequent and behave differently (a -2 month has
  no bill), so every code is its own category (``"-2"`` ... ``"8"``; rare ones fall into the
  encoder's unknown slot) and the numeric copy keeps the raw code.

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

__all__ = ["DOMAIN", "FILENAME", "MONTHS", "SPEC", "build_records", "load"]

DOMAIN = "credit"
FILENAME = "credit_default.csv.gz"
LABEL = "default payment next month"
AS_OF = datetime(2005, 10, 1, tzinfo=UTC)
# (statement date, PAY column, BILL_AMT column, PAY_AMT column), oldest first.
MONTHS: tuple[tuple[datetime, str, str, str], ...] = tuple(
    (datetime(2005, month, day, tzinfo=UTC), f"PAY_{k}", f"BILL_AMT{n}", f"PAY_AMT{n}")
    for month, day, k, n in [
        (4, 30, 6, 6),
        (5, 31, 5, 5),
        (6, 30, 4, 4),
        (7, 31, 3, 3),
        (8, 31, 2, 2),
        (9, 30, 0, 1),
    ]
)
EDUCATION = {1: "graduate_school", 2: "university", 3: "high_school", 4: "other"}
MARRIAGE = {1: "married", 2: "single", 3: "other"}
SEX = {1: "male", 2: "female"}

SPEC = FeatureSpec(
    domain=DOMAIN,
    event_fields=(
        FieldRole("pay_status", "categorical"),
        FieldRole("pay_status", "numeric", "none"),
        FieldRole("bill_amt", "numeric", "signed_log1p"),
        FieldRole("pay_amt", "numeric", "signed_log1p"),
        FieldRole("bill_to_limit", "numeric", "none"),
    ),
    profile_fields=(
        FieldRole("LIMIT_BAL", "numeric", "signed_log1p"),
        FieldRole("SEX", "categorical"),
        FieldRole("EDUCATION", "categorical"),
        FieldRole("MARRIAGE", "categorical"),
        FieldRole("AGE", "numeric", "none"),
    ),
)


def _ratio(bill: np.ndarray, limit: np.ndarray) -> list[float | None]:
    """bill / limit, None where the limit is not positive (missing, not infinite)."""
    ratio = bill / np.where(limit > 0, limit, np.nan)
    return [None if np.isnan(r) else r for r in ratio.tolist()]


def build_records(frame: pd.DataFrame) -> list[CustomerRecord]:
    """One record per row (split "train" as a placeholder; ``load`` assigns splits)."""
    wanted = {"ID", LABEL, "LIMIT_BAL", "SEX", "EDUCATION", "MARRIAGE", "AGE"}
    wanted |= {column for _, *columns in MONTHS for column in columns}
    missing = wanted - set(frame.columns)
    if missing:
        raise ValueError(f"credit data lacks columns {sorted(missing)}")
    ids = frame["ID"].astype(str).tolist()
    limit = frame["LIMIT_BAL"].to_numpy(dtype=np.float64)
    education = frame["EDUCATION"].map(lambda c: EDUCATION.get(c, "other_unknown")).tolist()
    marriage = frame["MARRIAGE"].map(lambda c: MARRIAGE.get(c, "unknown")).tolist()
    sex = frame["SEX"].map(lambda c: SEX.get(c, "unknown")).tolist()
    ages = frame["AGE"].astype(int).tolist()
    labels = frame[LABEL].astype(int).tolist()
    months = [
        (
            when,
            frame[pay].astype(int).tolist(),
            frame[bill].astype(float).tolist(),
            frame[paid].astype(float).tolist(),
            _ratio(frame[bill].to_numpy(dtype=np.float64), limit),
        )
        for when, pay, bill, paid in MONTHS
    ]
    documents = [
        {
            "event_id": f"{cid}-{when:%Y-%m}",
            "customer_id": cid,
            "event_time": when,
            "domain": DOMAIN,
            "kind": "statement",
            "fields": {
                "pay_status": pay[i],
                "bill_amt": bill[i],
                "pay_amt": paid[i],
                "bill_to_limit": ratio[i],
            },
        }
        for i, cid in enumerate(ids)
        for when, pay, bill, paid, ratio in months
    ]
    events = validate_events(documents)
    steps = len(months)
    records = []
    for i, cid in enumerate(ids):
        profile = {
            "LIMIT_BAL": float(limit[i]),
            "SEX": sex[i],
            "EDUCATION": education[i],
            "MARRIAGE": marriage[i],
            "AGE": ages[i],
        }
        mine = events[i * steps : (i + 1) * steps]
        records.append(CustomerRecord(cid, profile, mine, labels[i], None, "train", AS_OF))
    return records


@functools.lru_cache(maxsize=2)
def _cached_records(key: FileKey) -> tuple[CustomerRecord, ...]:
    return tuple(build_records(pd.read_csv(key[0])))


def load(data_dir: Path, seed: int = 0) -> DomainDataset:
    """Credit records split stratified 80/20 (test) then 80/20 (train/val) with ``seed``."""
    path = Path(data_dir) / FILENAME
    records = _cached_records(file_key(path))
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
            "event_window": ["2005-04", "2005-09"],
            "as_of": AS_OF.isoformat(),
        },
    )
