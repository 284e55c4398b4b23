"""An event log read with an ``EventLogSpec`` (the spec's docstring says how): rows -> events.

``event_log(spec, frame)``: rows -> one event per (customer, ``group_by`` value) or per row,
sorted by customer, time, key; rows without a customer id, with an unparsable time or without
a ``group_by`` value are counted by reason and logged, never used. Records at cutoffs are
built from the result by ``cutoff_records.py``.

Floats in events are rounded to 4 decimals; counts are ints; event ids are
``<customer>-<group value>`` (or ``<customer>-<row>`` zero-padded).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from crmrisk.stream.events import CustomerEvent
from crmrisk.training.datasets.errors import DataError
from crmrisk.training.datasets.event_log_spec import (
    SIGNED_AMOUNT,
    ColumnLabel,
    EventLogSpec,
)
from crmrisk.training.datasets.records import (
    validate_events,
)
from crmrisk.training.datasets.tables import (
    derive_columns,
    read_table,
    text,
    text_values,
    utc_times,
)

__all__ = ["DAY", "EventLog", "event_log", "field_values", "read_log", "source_path"]

log = logging.getLogger(__name__)

DAY = pd.Timedelta(days=1)


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
            table[name] = table.groupby("customer", sort=False)["time"].diff() / DAY
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


def field_values(column: pd.Series, encoding: str, count: bool) -> list:
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
        n: field_values(table[n], f.encoding, f.agg in ("count", "nunique"))
        for n, f in fields.items()
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
