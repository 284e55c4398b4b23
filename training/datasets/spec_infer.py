"""A starting spec from a data file: column roles guessed from names, types and cardinality.

``infer_spec(path)`` reads the first rows, names the likely customer id, time, event key (an
invoice/order number), amount (or quantity x price), kind and outcome columns, and writes an
``EventLogSpec`` (labels derived at cutoffs) for a log with repeated customers, or a
``GenericSpec`` for one labelled row per customer. The YAML opens with a comment per column
saying what was guessed and why; every guess is a starting point to edit, then
``crmrisk spec check``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from crmrisk.training.datasets.tables import read_table, utc_times

__all__ = ["infer_spec"]

_SAMPLE_ROWS = 200_000
_ID = re.compile(
    r"(customer|client|user|account|member|cust|subscriber|buyer)[ _-]?(id|no|ref|number|key)?$"
    r"|^id$",
    re.I,
)
_TIME = re.compile(r"(date|time|timestamp|^ts$|_at$|when|day)", re.I)
_KEY = re.compile(r"(invoice|order|transaction|txn|basket|receipt|ticket|session)", re.I)
_AMOUNT = re.compile(r"(amount|total|revenue|spend|sales|payment|value)", re.I)
_QTY = re.compile(r"(quantity|qty|units|count)", re.I)
_PRICE = re.compile(r"(price|cost)", re.I)
_KIND = re.compile(r"(type|kind|event|status|state|action|category)", re.I)
_OUTCOME = re.compile(r"(churn|default|label|target|outcome|fraud|cancel|attrition|left)", re.I)


def _binary(column: pd.Series) -> bool:
    return 1 < column.dropna().nunique() <= 2


def _pick(columns: list[str], pattern: re.Pattern, ok=lambda c: True) -> str | None:
    return next((c for c in columns if pattern.search(str(c)) and ok(c)), None)


def infer_spec(path: Path, domain: str | None = None, horizon_days: int = 90) -> tuple[str, str]:
    """(YAML text with comments, a one-line summary of the guess)."""
    frame = read_table(Path(path), nrows=_SAMPLE_ROWS)
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    n = len(frame)
    unique = {c: frame[c].nunique(dropna=True) for c in columns}
    numeric = {c for c in columns if pd.api.types.is_numeric_dtype(frame[c])}
    notes: dict[str, str] = {}

    def is_time(c: str) -> bool:
        if c in numeric:
            return False
        sample = frame[c].dropna().head(500)
        return len(sample) > 0 and utc_times(sample, None, c).notna().mean() > 0.9

    cid = _pick(columns, _ID, lambda c: unique[c] > 1) or columns[0]
    notes[cid] = f"customer id ({unique[cid]:,} distinct in {n:,} rows)"
    time = _pick(columns, _TIME, is_time) or next((c for c in columns if is_time(c)), None)
    if time:
        notes[time] = "event time"
    repeated = unique[cid] < n
    outcome = _pick(
        [c for c in columns if c not in (cid, time)], _OUTCOME, lambda c: _binary(frame[c])
    )
    name = domain or re.sub(r"[^a-z0-9_-]", "_", Path(path).name.split(".")[0].lower())
    name = name if re.match(r"^[a-z]", name) else f"d_{name}"
    if not (time and repeated):
        return _snapshot(frame, name, Path(path), cid, time, outcome, notes, numeric, unique)

    taken = {cid, time}
    key = _pick(columns, _KEY, lambda c: c not in taken and unique[cid] <= unique[c] < n)
    taken |= {key} if key else set()
    kind = _pick(columns, _KIND, lambda c: c not in taken and c not in numeric and unique[c] <= 20)
    taken |= {kind} if kind else set()
    derived: dict[str, str] = {}
    amount_col = _pick(columns, _AMOUNT, lambda c: c in numeric and c not in taken)
    qty = _pick(columns, _QTY, lambda c: c in numeric and c not in taken)
    price = _pick(columns, _PRICE, lambda c: c in numeric and c not in taken)
    if amount_col is None and qty and price:
        derived["line_value"] = f"abs(`{qty}`) * `{price}`"
        amount_col = "line_value"
        notes[qty] = notes[price] = "quantity x price -> line_value (the amount)"
    agg = "sum" if key else "first"
    fields: dict[str, Any] = {}
    if key:
        fields["n_rows"] = {"agg": "count"}
        notes[key] = f"event key: rows with the same {key} are one event"
    if amount_col:
        fields["amount"] = {"agg": agg, "column": amount_col, "transform": "signed_log1p"}
        notes.setdefault(amount_col, "amount (money)")
    if kind:
        notes[kind] = f"event kind ({unique[kind]} values)"
    for c in columns:
        if c in taken or c in notes or c == outcome:
            continue
        if c in numeric:
            fields[c] = {"agg": "mean" if key else "first", "column": c}
            notes[c] = "numeric event field"
        elif unique[c] <= 50:
            fields[c] = {"agg": "first", "column": c, "fill": "unknown"}
            notes[c] = f"categorical event field ({unique[c]} values)"
        else:
            notes[c] = f"ignored: text with {unique[c]:,} distinct values"
    fields["gap_days"] = {"agg": "gap_days", "transform": "signed_log1p"}
    profile: dict[str, Any] = {
        "tenure_days": {"agg": "days_since_first"},
        "recency_days": {"agg": "days_since_last", "transform": "signed_log1p"},
        "n_events": {"agg": "count", "transform": "signed_log1p"},
        f"events_{horizon_days}d": {"agg": "count", "within_days": horizon_days},
    }
    if amount_col:
        profile["total_amount"] = {"agg": "sum", "column": "amount", "transform": "signed_log1p"}
    times = utc_times(frame[time], None, time).dropna()
    first, last = times.min(), times.max()
    test = (last - pd.Timedelta(days=horizon_days)).floor("D")
    train = [test - pd.Timedelta(days=horizon_days * k) for k in (2, 1)]
    train = [d for d in train if d > first + pd.Timedelta(days=30)] or [first + (test - first) / 2]
    if outcome:
        label = {"rule": "column", "horizon_days": horizon_days, "column": outcome}
        label["positive"] = _positive(frame[outcome])
        notes[outcome] = f"outcome column (label: {label['positive']!r} within the horizon)"
    else:
        label = {"rule": "inactivity", "horizon_days": horizon_days}
    document: dict[str, Any] = {
        "domain": name,
        "source": Path(path).name,
        "customer_id": cid,
        "time": time,
        **({"text_columns": [key]} if key and key not in numeric else {}),
        **({"columns": derived} if derived else {}),
        "events": {
            **({"group_by": key} if key else {}),
            **({"kind": {"column": kind}} if kind else {}),
            **({"amount": "amount"} if amount_col else {}),
            "fields": fields,
        },
        "profile": profile,
        "label": label,
        **({"target": {"agg": "sum", "column": "amount", "clip_min": 0.0}} if amount_col else {}),
        "cutoffs": {
            "train": [d.date().isoformat() for d in train],
            "test": test.date().isoformat(),
            "val_fraction": 0.2,
        },
    }
    header = [
        f"Starting spec guessed from {Path(path).name} ({n:,} rows read): an event log, labels "
        f"derived at cutoffs ({first:%Y-%m-%d} .. {last:%Y-%m-%d} in the data).",
        f"Label: {_describe_label(label)}. Edit anything, then: crmrisk spec check <this file>",
        "Columns:",
        *(f"  {c}: {notes.get(c, 'not used')}" for c in columns),
    ]
    summary = f"event log, customer {cid!r}, time {time!r}, label {label['rule']}"
    return _render(header, document), summary


def _positive(column: pd.Series) -> Any:
    values = sorted(column.dropna().unique().tolist(), key=str)
    for v in values:
        if str(v).strip().lower() in ("1", "1.0", "true", "yes", "y"):
            return v.item() if hasattr(v, "item") else v
    return values[-1].item() if hasattr(values[-1], "item") else values[-1]


def _describe_label(label: dict[str, Any]) -> str:
    days = label["horizon_days"]
    if label["rule"] == "inactivity":
        return f"1 = no event in the {days} days after a cutoff (churn); change kinds/rule"
    return f"1 = {label['column']} is {label['positive']!r} within {days} days after a cutoff"


def _snapshot(frame, name, path, cid, time, outcome, notes, numeric, unique) -> tuple[str, str]:
    """One row per customer (or no time): a ``GenericSpec`` with the outcome column as label."""
    profile: dict[str, str] = {}
    for c in frame.columns:
        if c in (cid, time, outcome) or c in notes:
            continue
        if c in numeric:
            profile[c] = "numeric"
        elif unique[c] <= 50:
            profile[c] = "categorical"
        else:
            notes[c] = f"ignored: text with {unique[c]:,} distinct values"
            continue
        notes[c] = f"profile, {profile[c]}"
    label = outcome or "CHANGE_ME"
    notes[label] = "label column" if outcome else "no outcome column found"
    document: dict[str, Any] = {
        "domain": name,
        "source": path.name,
        "customer_id": cid,
        **({"time": time} if time else {}),
        "label": label,
        "positive": _positive(frame[outcome]) if outcome else 1,
        "profile": profile,
        "split": {"method": "time" if time else "random", "test_fraction": 0.2},
    }
    header = [
        f"Starting spec guessed from {path.name} ({len(frame):,} rows read): one labelled row "
        "per customer (no repeated customers over time).",
        "Edit anything, then: crmrisk spec check <this file>",
        "Columns:",
        *(f"  {c}: {notes.get(c, 'not used')}" for c in frame.columns),
    ]
    return _render(header, document), f"rows with labels, customer {cid!r}, label {label!r}"


def _render(header: list[str], document: dict[str, Any]) -> str:
    body = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    return "".join(f"# {line}\n" for line in header) + body
