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

The adapter is one ``GenericSpec`` document (``DOCUMENT``, wide rows: ``row_events`` turns the
PAY/BILL_AMT/PAY_AMT column groups into the six statements) read by ``generic.py``; the
records are the hand-written adapter's, byte for byte (``tests/training/datasets/
test_builtin_digests.py``).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crmrisk.training.datasets import generic
from crmrisk.training.datasets.generic_spec import GenericSpec
from crmrisk.training.datasets.records import DomainDataset
from crmrisk.training.datasets.splits import RANDOM_STRATIFIED

__all__ = ["DOCUMENT", "DOMAIN", "FILENAME", "GENERIC_SPEC", "MONTHS", "SPEC", "load"]

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
_AMOUNTS = [c for _, _, bill, paid in MONTHS for c in (bill, paid)]

DOCUMENT: dict[str, Any] = {
    "domain": DOMAIN,
    "source": FILENAME,
    "customer_id": "ID",
    "label": LABEL,
    "positive": 1,
    "as_of": AS_OF.date().isoformat(),
    "dtypes": dict.fromkeys(["LIMIT_BAL", *_AMOUNTS], "float"),
    "recode": {
        "EDUCATION": {"values": EDUCATION, "default": "other_unknown"},
        "MARRIAGE": {"values": MARRIAGE, "default": "unknown"},
        "SEX": {"values": SEX, "default": "unknown"},
    },
    # bill / limit, missing where the limit is not positive (x / 0 is not finite).
    "columns": {
        f"bill_to_limit_{bill}": f"`{bill}` / (LIMIT_BAL * (LIMIT_BAL > 0))"
        for _, _, bill, _ in MONTHS
    },
    "profile": {
        "LIMIT_BAL": {"type": "numeric", "transform": "signed_log1p"},
        "SEX": "categorical",
        "EDUCATION": "categorical",
        "MARRIAGE": "categorical",
        "AGE": {"type": "numeric", "transform": "none"},
    },
    "events": {
        "pay_status": ["categorical", {"type": "numeric", "transform": "none"}],
        "bill_amt": {"type": "numeric", "transform": "signed_log1p"},
        "pay_amt": {"type": "numeric", "transform": "signed_log1p"},
        "bill_to_limit": {"type": "numeric", "transform": "none"},
    },
    "row_events": [
        {
            "kind": "statement",
            "id": f"{when:%Y-%m}",
            "time": when.date().isoformat(),
            "fields": {
                "pay_status": pay,
                "bill_amt": bill,
                "pay_amt": paid,
                "bill_to_limit": f"bill_to_limit_{bill}",
            },
        }
        for when, pay, bill, paid in MONTHS
    ],
    "split": {"method": "random", "test_fraction": 0.2, "val_fraction": 0.2},
}
GENERIC_SPEC = GenericSpec.model_validate(DOCUMENT)
SPEC = GENERIC_SPEC.feature_spec()


def load(data_dir: Path, seed: int = 0) -> DomainDataset:
    """Credit records split stratified 80/20 (test) then 80/20 (train/val) with ``seed``."""
    data = generic.load(GENERIC_SPEC, Path(data_dir), seed)
    # The generic loader's records and split, with this dataset's own account of them.
    return replace(
        data,
        info={
            "source": FILENAME,
            "split": RANDOM_STRATIFIED,
            "seed": seed,
            "event_window": ["2005-04", "2005-09"],
            "as_of": AS_OF.isoformat(),
        },
    )
