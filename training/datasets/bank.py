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
"""

from __future__ import annotations

import calendar
import functools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

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
from training.datasets.splits import ordered_splits, random_splits

__all__ = ["DOMAIN", "FILENAME", "build_records", "contact_dates", "load", "spec"]

DOMAIN = "bank"
FILENAME = "bank_marketing.csv.gz"
FIRST_YEAR = 2008
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MACRO = ("emp.var.rate", "cons.price.idx", "cons.conf.idx", "euribor3m", "nr.employed")
PROFILE = ("age", "job", "marital", "education", "default", "housing", "loan")
NOT_CONTACTED = 999


def spec(include_duration: bool = False) -> FeatureSpec:
    """The bank feature spec; ``duration`` is in it only when asked for."""
    contact = [
        FieldRole("contact", "categorical"),
        FieldRole("month", "categorical"),
        FieldRole("day_of_week", "categorical"),
        FieldRole("campaign", "numeric", "signed_log1p"),
    ]
    if include_duration:
        contact.append(FieldRole("duration", "numeric", "signed_log1p"))
    return FeatureSpec(
        domain=DOMAIN,
        event_fields=(
            FieldRole("previous", "numeric", "signed_log1p"),
            FieldRole("poutcome", "categorical"),
            FieldRole("days_since", "numeric", "none"),
            *(FieldRole(name, "numeric", "none") for name in MACRO),
            *contact,
        ),
        profile_fields=tuple(
            FieldRole(name, "numeric", "none") if name == "age" else FieldRole(name, "categorical")
            for name in PROFILE
        ),
    )


def contact_dates(months: pd.Series, weekdays: pd.Series) -> list[datetime]:
    """Approximate contact dates (UTC midnight) from month/day_of_week in row order.

    >>> contact_dates(pd.Series(["may", "may", "may", "mar"]), pd.Series(["wed", "fri", "mon", "tue"]))[1:]
    [datetime.datetime(2008, 5, 2, 0, 0, tzinfo=datetime.timezone.utc), datetime.datetime(2008, 5, 5, 0, 0, tzinfo=datetime.timezone.utc), datetime.datetime(2009, 3, 3, 0, 0, tzinfo=datetime.timezone.utc)]
    """  # noqa: E501
    month = months.str.lower().map({m: i + 1 for i, m in enumerate(MONTHS)})
    day = weekdays.str.lower().map({d: i for i, d in enumerate(WEEKDAYS)})
    if month.isna().any() or day.isna().any():
        bad = months[month.isna()].tolist()[:3] + weekdays[day.isna()].tolist()[:3]
        raise ValueError(f"bank data has unknown month/day_of_week values: {bad}")
    m = month.to_numpy(dtype=np.int64)
    d = day.to_numpy(dtype=np.int64)
    year = FIRST_YEAR + np.concatenate([[0], np.cumsum(np.diff(m) < 0)])
    new_month = np.concatenate([[True], (np.diff(m) != 0) | (np.diff(year) != 0)])
    went_back = np.concatenate([[False], np.diff(d) < 0]) & ~new_month
    week = pd.Series(went_back.astype(np.int64)).groupby(np.cumsum(new_month)).cumsum().to_numpy()
    dates = []
    cache: dict[tuple[int, int, int, int], datetime] = {}
    for key in zip(year.tolist(), m.tolist(), week.tolist(), d.tolist(), strict=True):
        if key not in cache:
            cache[key] = _date(*key)
        dates.append(cache[key])
    return dates


def _date(year: int, month: int, week: int, weekday: int) -> datetime:
    first = datetime(year, month, 1, tzinfo=UTC)
    monday = first - timedelta(days=first.weekday())
    date = monday + timedelta(days=7 * week + weekday)
    if date < first:
        date += timedelta(days=7)
    last = calendar.monthrange(year, month)[1]
    while date.month != month or date.day > last:
        date -= timedelta(days=7)
    return date


def _plain(v: object) -> object:
    return v.item() if isinstance(v, np.generic) else v


def _event(cid: str, suffix: str, when: datetime, kind: str, fields: dict) -> dict:
    return {
        "event_id": f"{cid}-{suffix}",
        "customer_id": cid,
        "event_time": when,
        "domain": DOMAIN,
        "kind": kind,
        "fields": fields,
    }


def build_records(frame: pd.DataFrame, include_duration: bool = False) -> list[CustomerRecord]:
    """One record per row, customer ``b<row>`` (split "train" as a placeholder)."""
    wanted = {"y", "pdays", "previous", "poutcome", "campaign", "duration", *MACRO, *PROFILE}
    missing = wanted - set(frame.columns)
    if missing:
        raise ValueError(f"bank data lacks columns {sorted(missing)}")
    dates = contact_dates(frame["month"], frame["day_of_week"])
    col = {c: [_plain(v) for v in frame[c].tolist()] for c in frame.columns}
    labels = (frame["y"] == "yes").astype(int).tolist()
    width = len(str(len(frame)))
    noon = timedelta(hours=12)
    documents: list[dict] = []
    counts = []
    for i in range(len(frame)):
        cid = f"b{i:0{width}d}"
        day = dates[i]
        before = len(documents)
        pdays, previous = col["pdays"][i], col["previous"][i]
        if previous > 0 or pdays != NOT_CONTACTED:
            known = pdays != NOT_CONTACTED
            documents.append(
                _event(
                    cid,
                    "0-previous",
                    day - timedelta(days=pdays if known else 1),
                    "previous_campaign",
                    {
                        "previous": previous,
                        "poutcome": col["poutcome"][i],
                        "days_since": pdays if known else None,
                    },
                )
            )
        documents.append(
            _event(cid, "1-market", day, "market", {name: col[name][i] for name in MACRO})
        )
        contact = {name: col[name][i] for name in ("contact", "month", "day_of_week", "campaign")}
        if include_duration:
            contact["duration"] = col["duration"][i]
        documents.append(_event(cid, "2-contact", day + noon, "contact", contact))
        counts.append(len(documents) - before)
    events = validate_events(documents)
    records = []
    start = 0
    for i, count in enumerate(counts):
        cid = events[start].customer_id
        profile = {name: col[name][i] for name in PROFILE}
        mine = events[start : start + count]
        records.append(
            CustomerRecord(cid, profile, mine, labels[i], None, "train", dates[i] + noon)
        )
        start += count
    return records


@functools.lru_cache(maxsize=4)
def _cached_records(key: FileKey, include_duration: bool) -> tuple[CustomerRecord, ...]:
    return tuple(build_records(pd.read_csv(key[0]), include_duration))


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
    records = _cached_records(file_key(Path(data_dir) / FILENAME), include_duration)
    if split == "time" and val == "tail":
        names = ordered_splits(len(records))
        rule = "time-ordered: first 80% of rows train (its last 20% validation), last 20% test"
    elif split == "time" and val == "random":
        names = ordered_splits(len(records), val_fraction=0.0)
        head = np.flatnonzero(names == "train")
        names[head] = random_splits([records[i].label for i in head], seed, 0.2, 0.0)
        names[head[names[head] == "test"]] = "val"
        rule = "time-ordered: first 80% of rows train (stratified 20% validation), last 20% test"
    elif split == "random":
        names = random_splits([r.label for r in records], seed)
        rule = "random stratified: 20% test, then 20% of the rest validation"
    else:
        raise ValueError(f"bank split must be 'time' or 'random', got {split!r}")
    groups = group_by_split(records, names)
    return DomainDataset(
        domain=DOMAIN,
        spec=spec(include_duration),
        train=groups["train"],
        val=groups["val"],
        test=groups["test"],
        has_target=False,
        info={
            "source": FILENAME,
            "split": rule,
            "seed": seed if split == "random" or val == "random" else None,
            "include_duration": include_duration,
            "dates": {
                name: [min(r.as_of for r in rs).isoformat(), max(r.as_of for r in rs).isoformat()]
                for name, rs in groups.items()
                if rs
            },
        },
    )
