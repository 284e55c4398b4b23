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

The adapter is one ``GenericSpec`` document (``DOCUMENT``, wide rows: one ``row_events``
entry per field group) read by ``generic.py``; the records are the hand-written adapter's,
byte for byte (``tests/training/datasets/test_builtin_digests.py``).
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

__all__ = ["DOCUMENT", "DOMAIN", "FILENAME", "GENERIC_SPEC", "GROUPS", "SNAPSHOT", "SPEC", "load"]

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


def _role(name: str, profile: bool) -> Any:
    if name not in NUMERIC:
        return "categorical"
    return {"type": "numeric", "transform": "none" if profile or name == "tenure" else "auto"}


DOCUMENT: dict[str, Any] = {
    "domain": DOMAIN,
    "source": FILENAME,
    "customer_id": "customerID",
    "label": "Churn",
    "positive": "Yes",
    # Blank TotalCharges (tenure 0, nothing billed yet) are no number: missing, rows kept.
    "dtypes": {"TotalCharges": "float"},
    "recode": {"SeniorCitizen": {"values": {1: "Yes"}, "default": "No"}},
    "profile": {name: _role(name, True) for name in PROFILE},
    "events": {name: _role(name, False) for _, names in GROUPS for name in names},
    "row_events": [
        {"kind": kind, "time": SNAPSHOT.date().isoformat(), "fields": {n: n for n in names}}
        for kind, names in GROUPS
    ],
    "split": {"method": "random", "test_fraction": 0.2, "val_fraction": 0.2},
}
GENERIC_SPEC = GenericSpec.model_validate(DOCUMENT)
SPEC = GENERIC_SPEC.feature_spec()


def load(data_dir: Path, seed: int = 0) -> DomainDataset:
    """Telco records split stratified 80/20 (test) then 80/20 (train/val) with ``seed``."""
    data = generic.load(GENERIC_SPEC, Path(data_dir), seed)
    blank = sum(
        r.events[5].fields["TotalCharges"] is None for r in (*data.train, *data.val, *data.test)
    )
    return replace(
        data,
        info={
            "source": FILENAME,
            "split": RANDOM_STRATIFIED,
            "seed": seed,
            "snapshot": SNAPSHOT.isoformat(),
            "total_charges_blank": blank,
        },
    )
