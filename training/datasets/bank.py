"""Bank marketing (UCI 222, ``bank-additional-full``): one customer per row, three short events.

Rows are one telemarketing contact each, in time order from May 2008 to November 2010; the
file has month and weekday but no year or day, so an approximate date is derived walking down
the rows: the year starts at 2008 and goes up whenever the month goes back (dec -> mar); within
a (year, month) a week counter starts at 0 and goes up whenever the weekday goes back (fri ->
mon); the date is that weekday in the month's week ``counter`` (weeks start on the Monday on or
before the 1st; a date before the 1st moves a week later, one after the month's end a week
earlier). Customer ids are ``b<row>``: row order is time order.

Per customer, the events that precede the outcome, oldest first:

- ``previous_campaign`` (only if contacted before: ``previous > 0`` or ``pdays != 999``):
  ``previous``, ``poutcome``, ``days_since`` (``pdays``; None when 999 = not recorded), dated
  ``pdays`` days before the contact (one day before when unknown).
- ``market`` at 00:00 of the contact day: the five macro indicators (``emp.var.rate``,
  ``cons.price.idx``, ``cons.conf.idx``, ``euribor3m``, ``nr.employed``), plain robust scaling
  without clipping or log, so values outside the training range (the 2010 test rows have
  euribor3m below anything seen in training) extrapolate linearly.
- ``contact`` at 12:00 of the contact day: ``contact``, ``month``, ``day_of_week``, ``campaign``
  (contacts in this campaign, this one included); ``duration`` only with
  ``include_duration=True``: it is known only after the call and leaks the label, so it is
  for a labelled side result only.

Profile: age, job, marital, education, default, housing, loan ("unknown" is kept as its own
category). ``as_of`` is the contact time; label ``y == "yes"``; no continuous target.

Splits (``split=``): ``"time"`` (default): the last 20% of rows are test; of the first 80%,
the last 20% are validation (``val="tail"``, default: the most recent past, closest to the test
period) or a seeded stratified 20% (``val="random"``: training then also sees the late-2008 /
2009 rows where the rates start to fall, at the price of an in-period validation set);
``"random"``: stratified 80/20 test with ``seed``, then stratified 20% of the rest as
validation. Nothing is chosen by looking at test rows.

The adapter is one ``GenericSpec`` document (``document()``: wide rows, a ``row_events`` entry
per event, the dates from ``time: {month, weekday, first_year}``, ``pdays`` 999 as a
``missing`` sentinel, split ``rows`` or ``random``) read by ``generic.py``; the records are the
hand-written adapter's, byte for byte (``tests/training/datasets/test_builtin_digests.py``).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from crmrisk.model.features import FeatureSpec
from crmrisk.training.datasets import generic
from crmrisk.training.datasets.generic_spec import GenericSpec
from crmrisk.training.datasets.records import CustomerRecord, DomainDataset
from crmrisk.training.datasets.splits import RANDOM_STRATIFIED
from crmrisk.training.datasets.tables import month_weekday_dates

__all__ = ["DOMAIN", "FILENAME", "build_records", "contact_dates", "document", "load", "spec"]

DOMAIN = "bank"
FILENAME = "bank_marketing.csv.gz"
FIRST_YEAR = 2008
MACRO = ("emp.var.rate", "cons.price.idx", "cons.conf.idx", "euribor3m", "nr.employed")
PROFILE = ("age", "job", "marital", "education", "default", "housing", "loan")
NOT_CONTACTED = 999
_RULES = {
    (
        "time",
        "tail",
    ): "time-ordered: first 80% of rows train (its last 20% validation), last 20% test",
    ("time", "random"): (
        "time-ordered: first 80% of rows train (stratified 20% validation), last 20% test"
    ),
    ("random", "tail"): RANDOM_STRATIFIED,
    ("random", "random"): RANDOM_STRATIFIED,
}


def document(
    include_duration: bool = False,
    split: Literal["time", "random"] = "time",
    val: Literal["tail", "random"] = "tail",
) -> dict[str, Any]:
    """The bank spec document; ``duration`` is in it only when asked for."""
    log1p = {"type": "numeric", "transform": "signed_log1p"}
    plain = {"type": "numeric", "transform": "none"}
    contact = ["contact", "month", "day_of_week", "campaign"]
    contact += ["duration"] if include_duration else []
    return {
        "domain": DOMAIN,
        "source": FILENAME,
        "id_prefix": "b",  # no id column: customer b<row>, row order is time order
        "time": {"month": "month", "weekday": "day_of_week", "first_year": FIRST_YEAR},
        "label": "y",
        "positive": "yes",
        "missing": {"pdays": [NOT_CONTACTED]},
        # the previous campaign's date: pdays days before the contact, one day when unknown
        "columns": {
            "previous_offset_days": f"-(pdays * (pdays != {NOT_CONTACTED}) "
            f"+ (pdays == {NOT_CONTACTED}))"
        },
        "profile": {name: plain if name == "age" else "categorical" for name in PROFILE},
        "events": {
            "previous": log1p,
            "poutcome": "categorical",
            "days_since": plain,
            **dict.fromkeys(MACRO, plain),
            "contact": "categorical",
            "month": "categorical",
            "day_of_week": "categorical",
            "campaign": log1p,
            **({"duration": log1p} if include_duration else {}),
        },
        "row_events": [
            {
                "kind": "previous_campaign",
                "id": "0-previous",
                "when": f"(previous > 0) | (pdays != {NOT_CONTACTED})",
                "offset_days": "previous_offset_days",
                "fields": {"previous": "previous", "poutcome": "poutcome", "days_since": "pdays"},
            },
            {"kind": "market", "id": "1-market", "fields": {n: n for n in MACRO}},
            {
                "kind": "contact",
                "id": "2-contact",
                "offset_hours": 12,
                "fields": {n: n for n in contact},
            },
        ],
        "split": {
            "method": "rows" if split == "time" else "random",
            "test_fraction": 0.2,
            "val_fraction": 0.2,
            "val": val if split == "time" else "tail",
        },
    }


def spec(include_duration: bool = False) -> FeatureSpec:
    """The bank feature spec; ``duration`` is in it only when asked for."""
    return GenericSpec.model_validate(document(include_duration)).feature_spec()


def contact_dates(months: pd.Series, weekdays: pd.Series) -> list[datetime]:
    """Approximate contact dates (UTC midnight) from month/day_of_week in row order.

    >>> contact_dates(pd.Series(["may", "may", "may", "mar"]), pd.Series(["wed", "fri", "mon", "tue"]))[1:]
    [datetime.datetime(2008, 5, 2, 0, 0, tzinfo=datetime.timezone.utc), datetime.datetime(2008, 5, 5, 0, 0, tzinfo=datetime.timezone.utc), datetime.datetime(2009, 3, 3, 0, 0, tzinfo=datetime.timezone.utc)]
    """  # noqa: E501
    return month_weekday_dates(months, weekdays, FIRST_YEAR)


def build_records(frame: pd.DataFrame, include_duration: bool = False) -> list[CustomerRecord]:
    """One record per row, customer ``b<row>`` (split "train" as a placeholder)."""
    return generic.build_records(GenericSpec.model_validate(document(include_duration)), frame)[0]


def load(
    data_dir: Path,
    seed: int = 0,
    split: Literal["time", "random"] = "time",
    include_duration: bool = False,
    val: Literal["tail", "random"] = "tail",
) -> DomainDataset:
    """Bank records; ``split="time"`` (default) or ``"random"`` (see the module docstring)."""
    if val not in ("tail", "random"):
        raise ValueError(f"bank val must be 'tail' or 'random', got {val!r}")
    if split not in ("time", "random"):
        raise ValueError(f"bank split must be 'time' or 'random', got {split!r}")
    rules = GenericSpec.model_validate(document(include_duration, split, val))
    data = generic.load(rules, Path(data_dir), seed)
    groups = data.splits()
    # The generic loader's records and split, with this dataset's own account of them.
    return replace(
        data,
        info={
            "source": FILENAME,
            "split": _RULES[(split, val)],
            "seed": seed if split == "random" or val == "random" else None,
            "include_duration": include_duration,
            "dates": {
                name: [min(r.as_of for r in rs).isoformat(), max(r.as_of for r in rs).isoformat()]
                for name, rs in groups.items()
                if rs
            },
        },
    )
