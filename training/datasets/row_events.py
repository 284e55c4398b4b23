"""Wide rows: one row per customer holding several events (``GenericSpec.row_events``).

Each row is one record, in file order: its events are the spec's ``row_events`` (those whose
``when`` holds), sorted by time with ties in the listed order, with ids
``<customer>-<suffix>``; the profile, label and target are the row's own cells; ``as_of`` is
the spec's fixed ``as_of`` or the row's last event time. ``generic_rows.py`` prepares the rows
(dtypes, recode, derived columns, ids and times) and ``generic.py`` splits the records.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from crmrisk.training.datasets.errors import DataError
from crmrisk.training.datasets.event_log_spec import utc_day
from crmrisk.training.datasets.generic_rows import contract_values
from crmrisk.training.datasets.generic_spec import GenericSpec, RowEventSpec
from crmrisk.training.datasets.records import CustomerRecord, validate_events
from crmrisk.training.datasets.tables import plain, text

__all__ = ["build_records"]


def _times(spec: GenericSpec, event: RowEventSpec, data: pd.DataFrame) -> pd.Series:
    base = (
        pd.Series(pd.Timestamp(utc_day(event.time)), index=data.index)
        if event.time
        else (data["_time"])
    )
    if isinstance(event.offset_days, str):
        days = pd.to_numeric(data[event.offset_days], errors="coerce")
        base = base + pd.to_timedelta(days, unit="D")
    elif event.offset_days:
        base = base + pd.Timedelta(days=event.offset_days)
    if event.offset_hours:
        base = base + pd.Timedelta(hours=event.offset_hours)
    return base


def _present(spec: GenericSpec, event: RowEventSpec, data: pd.DataFrame) -> list[bool]:
    if event.when is None:
        return [True] * len(data)
    try:
        hit = data.eval(event.when, engine="python")
    except Exception as exc:  # pandas raises many types for a bad expression
        raise DataError(
            f"{spec.domain}: row_events {event.kind} when: cannot evaluate {event.when!r}: {exc}"
        ) from exc
    return pd.Series(hit, index=data.index).fillna(False).astype(bool).tolist()


def build_records(spec: GenericSpec, data: pd.DataFrame) -> list[CustomerRecord]:
    """One record per prepared row (split "train" as a placeholder)."""
    repeated = data["_cid"][data["_cid"].duplicated()]
    if not repeated.empty:
        raise DataError(
            f"{spec.domain}: customer ids {repeated.head(3).tolist()} appear on several rows; "
            "with row_events each row is one customer (drop row_events for one event per row)"
        )
    cids = data["_cid"].tolist()
    values = {
        column: contract_values(spec, data, column)
        for column in {c for e in spec.row_events for c in e.fields.values()} | set(spec.profile)
    }
    plans = []
    for position, event in enumerate(spec.row_events):
        times = _times(spec, event, data)
        if times.isna().any():
            raise DataError(
                f"{spec.domain}: row_events {event.kind}: {int(times.isna().sum())} rows have "
                "no time (set its time, or the spec's time column)"
            )
        suffix = event.id or f"{position}-{event.kind}"
        plans.append(
            (event, suffix, times.dt.to_pydatetime().tolist(), _present(spec, event, data))
        )
    documents: list[dict] = []
    counts = []
    for i, cid in enumerate(cids):
        mine = [
            {
                "event_id": f"{cid}-{suffix}",
                "customer_id": cid,
                "event_time": times[i],
                "domain": spec.domain,
                "kind": event.kind,
                "fields": {name: values[column][i] for name, column in event.fields.items()},
            }
            for event, suffix, times, present in plans
            if present[i]
        ]
        mine.sort(key=lambda d: d["event_time"])  # stable: ties keep the listed order
        documents += mine
        counts.append(len(mine))
    events = validate_events(documents)
    labels = data[spec.label].map(text).tolist()
    positive = (text(spec.positive) or "").casefold()
    targets = data[spec.target].tolist() if spec.target else [None] * len(cids)
    fixed = None if spec.as_of == "last_event" else utc_day(spec.as_of)
    row_times = data["_time"].dt.to_pydatetime().tolist()
    ends = np.cumsum([0, *counts]).tolist()
    records = []
    for i, cid in enumerate(cids):
        mine = events[ends[i] : ends[i + 1]]
        target = plain(targets[i])
        label = labels[i]
        as_of = fixed or (mine[-1].event_time if mine else row_times[i])
        records.append(
            CustomerRecord(
                customer_id=cid,
                profile={c: values[c][i] for c in spec.profile},
                events=mine,
                label=int(label is not None and label.casefold() == positive),
                target=None if target is None else float(target),
                split="train",
                as_of=as_of,
            )
        )
    return records
