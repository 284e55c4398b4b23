"""Records at cutoffs from an event log and an ``EventLogSpec`` (the spec's docstring says how).

``event_log(spec, frame)``: rows -> one event per (customer, ``group_by`` value) or per row,
sorted by customer, time, key; rows without a customer id, with an unparsable time or without
a ``group_by`` value are counted by reason and logged, never used. ``build_records(spec, log,
cutoff)``: for each customer with a ``population_kinds`` event before the cutoff, every event
with time < cutoff, the profile aggregated from those same events, and the label and target
from the events in ``[cutoff, cutoff + horizon)``. Nothing at or after the cutoff reaches the
features (``tests/training/datasets/test_event_log.py`` appends future rows to check it).
``load``: records at the training cutoffs (train/validation by customer, seeded) and at the
test cutoff.

Floats in events and profiles are rounded to 4 decimals; counts are ints; event ids are
``<customer>-<group value>`` (or ``<customer>-<row>`` zero-padded).
"""

from __future__ import annotations

import functools
import logging
import operator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from stream.events import CustomerEvent
from training.datasets.errors import DataError
from training.datasets.event_log_spec import (
    SIGNED_AMOUNT,
    ColumnLabel,
    EventLogSpec,
    FutureAggregate,
    InactivityLabel,
    ThresholdLabel,
    utc_day,
)
from training.datasets.records import (
    CustomerRecord,
    DomainDataset,
    group_by_split,
    validate_events,
)
from training.datasets.source import FileKey, file_key
from training.datasets.splits import group_splits
from training.datasets.tables import derive_columns, read_table, text, text_values, utc_times

__all__ = ["EventLog", "build_records", "event_log", "load", "read_log", "source_path"]

log = logging.getLogger(__name__)

_DAY = pd.Timedelta(days=1)
_OPS = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True)
class EventLog:
    """One row per event (sorted by customer, time, key) and its events, row-aligned.

    ``table`` columns: ``customer``, ``key``, ``time``, ``kind``, the event fields,
    ``signed_amount`` (when the spec names an amount) and ``outcome`` (for a column label).
    """

    table: pd.DataFrame
    events: tuple[CustomerEvent, ...]
    rows: int
    dropped: dict[str, int]
    ignored_columns: tuple[str, ...]


def source_path(spec: EventLogSpec, data_dir: Path) -> Path:
    path = Path(spec.source)
    return path if path.is_absolute() else Path(data_dir) / path


def read_log(spec: EventLogSpec, path: Path) -> pd.DataFrame:
    return read_table(path, spec.format, spec.text_columns)


def _derive(spec: EventLogSpec, frame: pd.DataFrame) -> pd.DataFrame:
    missing = sorted(spec.source_columns() - set(frame.columns))
    if missing:
        raise DataError(
            f"{spec.domain}: columns {missing} named in the spec are not in the data "
            f"(it has {sorted(map(str, frame.columns))[:20]})"
        )
    return derive_columns(spec.domain, frame, spec.columns)


def _kinds(spec: EventLogSpec, frame: pd.DataFrame) -> pd.Series:
    rule = spec.events.kind
    if rule.column is None:
        return pd.Series(rule.default or "event", index=frame.index, dtype=object)
    values = text_values(frame[rule.column]).astype(object)
    kinds = values.map(rule.values) if rule.values else pd.Series(None, index=frame.index)
    kinds = kinds.astype(object)
    for prefix, kind in rule.prefixes.items():
        hit = kinds.isna() & values.fillna("").str.startswith(prefix)
        kinds = kinds.mask(hit, kind)
    rest = values if rule.default is None else pd.Series(rule.default, index=frame.index)
    return kinds.fillna(rest).fillna("event").astype(object)


def event_log(spec: EventLogSpec, frame: pd.DataFrame) -> EventLog:
    """The spec's events from the file's rows (see the module docstring)."""
    rows = len(frame)
    ignored = tuple(sorted(map(str, set(frame.columns) - spec.source_columns() - _inputs(spec))))
    frame = _derive(spec, frame)
    ev = spec.events
    work = pd.DataFrame(
        {
            "customer": text_values(frame[spec.customer_id]),
            "time": utc_times(frame[spec.time], spec.time_unit, spec.time),
            "key": text_values(frame[ev.group_by])
            if ev.group_by
            else pd.Series(np.arange(rows), index=frame.index),
            "kind": _kinds(spec, frame),
        }
    )
    for name, field in ev.fields.items():
        if field.column is not None:
            source = frame[field.column]
            work[f"_src_{name}"] = source if field.fill is None else source.fillna(field.fill)
    if isinstance(spec.label, ColumnLabel):
        positive = (text(spec.label.positive) or "").casefold()
        work["outcome"] = text_values(frame[spec.label.column]).str.casefold() == positive
    no_id = work["customer"].isna()
    bad_time = ~no_id & work["time"].isna()
    no_key = ~no_id & ~bad_time & work["key"].isna()
    dropped = {
        "rows_without_customer_id": int(no_id.sum()),
        "rows_with_bad_time": int(bad_time.sum()),
    }
    if ev.group_by:
        dropped[f"rows_without_{ev.group_by}"] = int(no_key.sum())
    if any(dropped.values()):
        log.warning("%s: of %d rows, dropped %s", spec.domain, rows, dropped)
    work = work[~(no_id | bad_time | no_key)]
    table = _aggregate(spec, work) if ev.group_by else _one_per_row(spec, work)
    table = table.sort_values(["customer", "time", "key"], kind="stable").reset_index(drop=True)
    if ev.amount is not None:
        sign = np.where(table["kind"].isin(ev.negative_kinds), -1.0, 1.0)
        table[SIGNED_AMOUNT] = table[ev.amount].astype(float) * sign
    for name, field in ev.fields.items():
        if field.agg == "gap_days":
            table[name] = table.groupby("customer", sort=False)["time"].diff() / _DAY
    return EventLog(table, tuple(_events(spec, table, rows)), rows, dropped, ignored)


def _inputs(spec: EventLogSpec) -> set[str]:
    """Names a derived column's expression may read (a loose token match, for the report)."""
    tokens: set[str] = set()
    for expression in spec.columns.values():
        tokens |= set(expression.replace("(", " ").replace(")", " ").replace("`", " ").split())
    return tokens


def _aggregate(spec: EventLogSpec, work: pd.DataFrame) -> pd.DataFrame:
    named = {"time": ("time", "min"), "kind": ("kind", "first")}
    for name, field in spec.events.fields.items():
        if field.agg == "count":
            named[name] = ("time", "size")
        elif field.agg != "gap_days":
            named[name] = (f"_src_{name}", field.agg)
    if "outcome" in work.columns:
        named["outcome"] = ("outcome", "max")
    return work.groupby(["customer", "key"], sort=False).agg(**named).reset_index()


def _one_per_row(spec: EventLogSpec, work: pd.DataFrame) -> pd.DataFrame:
    table = work[["customer", "key", "time", "kind"]].copy()
    for name, field in spec.events.fields.items():
        if field.agg == "count":
            table[name] = 1
        elif field.agg == "nunique":
            table[name] = work[f"_src_{name}"].notna().astype(int)
        elif field.agg != "gap_days":
            table[name] = work[f"_src_{name}"]
    if "outcome" in work.columns:
        table["outcome"] = work["outcome"]
    return table


def _values(column: pd.Series, encoding: str, count: bool) -> list:
    """Contract values: counts as int, numbers rounded to 4 places, text, None for missing."""
    if encoding == "categorical":
        return text_values(column).tolist()
    numbers = pd.to_numeric(column, errors="coerce").astype(float)
    if count:
        return [None if v != v else int(v) for v in numbers.tolist()]
    return [None if v != v else round(v, 4) for v in numbers.tolist()]


def _events(spec: EventLogSpec, table: pd.DataFrame, rows: int) -> list[CustomerEvent]:
    fields = spec.events.fields
    columns = {
        n: _values(table[n], f.encoding, f.agg in ("count", "nunique")) for n, f in fields.items()
    }
    customers = table["customer"].tolist()
    keys = table["key"].tolist()
    if not spec.events.group_by:
        width = len(str(max(rows - 1, 0)))
        keys = [f"{k:0{width}d}" for k in keys]
    kinds = table["kind"].tolist()
    times = table["time"].dt.to_pydatetime().tolist()
    names = list(fields)
    return validate_events(
        [
            {
                "event_id": f"{cid}-{keys[i]}",
                "customer_id": cid,
                "event_time": times[i],
                "domain": spec.domain,
                "kind": kinds[i],
                "fields": {n: columns[n][i] for n in names},
            }
            for i, cid in enumerate(customers)
        ]
    )


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
            value = (cutoff - by["time"].min()) / _DAY
        elif rule.agg == "days_since_last":
            value = (cutoff - by["time"].max()) / _DAY
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
        n: _values(frame[n], r.encoding, r.agg in ("count", "nunique"))
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
    if pd.Timestamp(test) + pd.Timedelta(days=days) > last + _DAY:
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
