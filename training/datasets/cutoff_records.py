"""Records at cutoffs from an ``EventLog`` (``event_log.py``) and its ``EventLogSpec``.

``build_records(spec, log, cutoff)``: for each customer with a ``population_kinds`` event before
the cutoff, every event with time < cutoff, the profile aggregated from those same events, and
the label and target from the events in ``[cutoff, cutoff + horizon)``. Nothing at or after the
cutoff reaches the features (``tests/training/datasets/test_cutoff_records.py`` appends future
rows to check it). ``load``: records at the training cutoffs (train/validation by customer,
seeded) and at the test cutoff. Floats in profiles are rounded to 4 decimals.
"""

from __future__ import annotations

import functools
import logging
import operator
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from crmrisk.training.datasets.errors import DataError
from crmrisk.training.datasets.event_log import (
    DAY,
    EventLog,
    event_log,
    field_values,
    read_log,
    source_path,
)
from crmrisk.training.datasets.event_log_spec import (
    ColumnLabel,
    EventLogSpec,
    FutureAggregate,
    InactivityLabel,
    ThresholdLabel,
    utc_day,
)
from crmrisk.training.datasets.records import CustomerRecord, DomainDataset, group_by_split
from crmrisk.training.datasets.source import FileKey, file_key
from crmrisk.training.datasets.splits import group_splits

__all__ = ["build_records", "check_cutoffs", "load"]

log = logging.getLogger(__name__)

_OPS = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


def _window(table: pd.DataFrame, start: datetime, days: float, kinds: list[str] | None):
    time = table["time"]
    rows = table[(time >= start) & (time < start + timedelta(days=days))]
    return rows if kinds is None else rows[rows["kind"].isin(kinds)]


def _future(rows: pd.DataFrame, rule: FutureAggregate) -> pd.Series:
    by = rows.groupby("customer")
    if rule.agg == "count":
        return by.size().astype(float)
    return by[rule.column].agg(rule.agg).astype(float)


def _labels(spec: EventLogSpec, table: pd.DataFrame, as_of: datetime, customers) -> np.ndarray:
    rule = spec.label
    index = pd.Index(customers)
    if isinstance(rule, InactivityLabel):
        active = _window(table, as_of, rule.horizon_days, rule.kinds)["customer"]
        return (~index.isin(active.unique())).astype(int)
    rows = _window(table, as_of, rule.horizon_days, getattr(rule, "kinds", None))
    if isinstance(rule, ColumnLabel):
        hit = rows.groupby("customer")["outcome"].any().reindex(index, fill_value=False)
        return hit.to_numpy().astype(int)
    assert isinstance(rule, ThresholdLabel)
    fill = 0.0 if rule.agg in ("count", "sum") else np.nan
    value = _future(rows, rule).reindex(index, fill_value=fill).to_numpy()
    with np.errstate(invalid="ignore"):
        return _OPS[rule.op](value, rule.value).astype(int)  # NaN compares false


def _targets(spec: EventLogSpec, table: pd.DataFrame, as_of: datetime, customers) -> list:
    rule = spec.target
    if rule is None:
        return [None] * len(customers)
    rows = _window(table, as_of, rule.horizon_days or spec.label.horizon_days, rule.kinds)
    value = _future(rows, rule).reindex(pd.Index(customers), fill_value=0.0)
    if rule.clip_min is not None:
        value = value.clip(lower=rule.clip_min)
    return [float(v) for v in value.fillna(0.0).tolist()]


def _profiles(spec: EventLogSpec, past: pd.DataFrame, as_of: datetime, customers) -> list[dict]:
    cutoff = pd.Timestamp(as_of)
    index = pd.Index(customers)
    frame = pd.DataFrame(index=index)
    for name, rule in spec.profile.items():
        rows = past if rule.kinds is None else past[past["kind"].isin(rule.kinds)]
        if rule.within_days is not None:
            rows = rows[rows["time"] >= cutoff - pd.Timedelta(days=rule.within_days)]
        by = rows.groupby("customer")
        if rule.agg == "count":
            value = by.size().reindex(index, fill_value=0)
        elif rule.agg == "days_since_first":
            value = (cutoff - by["time"].min()) / DAY
        elif rule.agg == "days_since_last":
            value = (cutoff - by["time"].max()) / DAY
        elif rule.agg == "mode":
            # Most frequent value; ties go to the alphabetically first (deterministic).
            value = (
                rows.groupby(["customer", rule.column])
                .size()
                .reset_index(name="_n")
                .sort_values(["customer", "_n", rule.column], ascending=[True, False, True])
                .drop_duplicates("customer")
                .set_index("customer")[rule.column]
            )
        else:
            value = by[rule.column].agg(rule.agg)
            if rule.agg == "sum":
                value = value.reindex(index, fill_value=0.0)
        frame[name] = value.reindex(index)
    columns = {
        n: field_values(frame[n], r.encoding, r.agg in ("count", "nunique"))
        for n, r in spec.profile.items()
    }
    return [{n: columns[n][i] for n in spec.profile} for i in range(len(index))]


def build_records(
    spec: EventLogSpec, data: EventLog, cutoff: str | datetime
) -> list[CustomerRecord]:
    """Records as of ``cutoff`` (split "train"), customers in id order."""
    as_of = utc_day(cutoff)
    table = data.table
    past = table[table["time"] < as_of]
    scored = (
        past if spec.population_kinds is None else past[past["kind"].isin(spec.population_kinds)]
    )
    customers = scored["customer"].unique()
    labels = _labels(spec, table, as_of, customers)
    targets = _targets(spec, table, as_of, customers)
    profiles = _profiles(spec, past, as_of, customers)
    # groupby().indices are positions within ``past``; map them to rows of ``table``/events.
    rows = past.index.to_numpy()
    positions = past.groupby("customer", sort=False).indices
    return [
        CustomerRecord(
            customer_id=cid,
            profile=profiles[i],
            events=[data.events[j] for j in rows[positions[cid]]],
            label=int(labels[i]),
            target=targets[i],
            split="train",
            as_of=as_of,
        )
        for i, cid in enumerate(customers)
    ]


@functools.lru_cache(maxsize=2)
def _cached_log(spec_json: str, key: FileKey) -> EventLog:
    spec = EventLogSpec.model_validate_json(spec_json)
    return event_log(spec, read_log(spec, Path(key[0])))


@functools.lru_cache(maxsize=8)
def _cached_records(spec_json: str, key: FileKey, cutoff: str) -> tuple[CustomerRecord, ...]:
    spec = EventLogSpec.model_validate_json(spec_json)
    return tuple(build_records(spec, _cached_log(spec_json, key), cutoff))


def check_cutoffs(spec: EventLogSpec, last: pd.Timestamp) -> None:
    """Raise ``DataError`` when a horizon overlaps the test period or runs past the data."""
    days = spec.horizon_days
    test = utc_day(spec.cutoffs.test)
    for cutoff in spec.cutoffs.train:
        if utc_day(cutoff) + timedelta(days=days) > test:
            raise DataError(
                f"{spec.domain}: training cutoff {cutoff} + {days:g} days runs past the test "
                f"cutoff {spec.cutoffs.test}: its labels would overlap the test period"
            )
    if pd.Timestamp(test) + pd.Timedelta(days=days) > last + DAY:
        raise DataError(
            f"{spec.domain}: test cutoff {spec.cutoffs.test} + {days:g} days runs past the "
            f"data ({last}): move cutoffs.test earlier or shorten the horizon"
        )


def load(spec: EventLogSpec, data_dir: Path, seed: int = 0) -> DomainDataset:
    """Train/val records at the training cutoffs (by customer), test at the test cutoff."""
    path = source_path(spec, data_dir)
    if not path.is_file():
        raise DataError(f"{spec.domain}: data file not found: {path}")
    key = file_key(path)
    spec_json = spec.model_dump_json()
    data = _cached_log(spec_json, key)
    if data.table.empty:
        raise DataError(f"{spec.domain}: no usable rows in {path} ({data.dropped})")
    check_cutoffs(spec, data.table["time"].max())
    train_cutoffs = [str(c) for c in spec.cutoffs.train]
    train_records = [r for c in train_cutoffs for r in _cached_records(spec_json, key, c)]
    test_cutoff = str(spec.cutoffs.test)
    test = [r.with_split("test") for r in _cached_records(spec_json, key, test_cutoff)]
    for name, records in (("training", train_records), ("test", test)):
        positives = sum(r.label for r in records)
        if positives in (0, len(records)):
            raise DataError(
                f"{spec.domain}: all {len(records)} customers at the {name} cutoffs have label "
                f"{'1' if positives else '0'}: change the label rule or the cutoffs"
            )
    names = group_splits([r.customer_id for r in train_records], seed, spec.cutoffs.val_fraction)
    groups = group_by_split(train_records, names)
    return DomainDataset(
        domain=spec.domain,
        spec=spec.feature_spec(),
        train=groups["train"],
        val=groups["val"],
        test=test,
        has_target=spec.target is not None,
        info={
            "source": str(path),
            "split": "test at the test cutoff; train/val at earlier cutoffs, "
            f"{spec.cutoffs.val_fraction:.0%} of customers (seeded) to validation",
            "seed": seed,
            "train_cutoffs": train_cutoffs,
            "test_cutoff": test_cutoff,
            "horizon_days": spec.horizon_days,
            "rows": data.rows,
            "events": len(data.table),
            **data.dropped,
            "event_log_spec": spec.model_dump(mode="json"),
        },
    )
