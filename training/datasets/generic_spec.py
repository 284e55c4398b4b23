"""A new domain without new code: a CSV, JSONL or Parquet file plus a small ``GenericSpec``.

This module holds the spec; ``generic.py`` builds and splits the records, ``row_events.py``
the wide rows.

For a log without a label column (labels derived at cutoffs) see ``event_log_spec.py``.

Each row is one event of one customer. The spec names the customer id, time, label (and its
positive value), optional target and kind columns, and the role of every other column used:
``profile`` (static, per customer) or ``events`` (per row), each ``numeric`` or
``categorical``. Loadable from YAML or JSON::

    domain: subscriptions
    source: subscriptions.csv          # relative to data_dir (or absolute)
    customer_id: user_id
    time: ts                           # omit for snapshot data: rows keep file order
    time_unit: s                       # only for epoch numbers
    label: churned
    positive: 1
    target: revenue_next_90d           # optional continuous target
    kind: event_type                   # optional; default kind "event"
    profile: {plan: categorical, age: numeric}
    events: {amount: {type: numeric, transform: signed_log1p}, channel: categorical}
    split: {method: random, test_fraction: 0.2, val_fraction: 0.2}

Per customer: events in time order (ties keep file order: event ids are ``<customer>-<row>``
zero-padded, unless ``event_id`` names a column); ``as_of`` = the last event's time; the
profile takes each profile column's last non-missing value; the label is the last non-missing
label value (1 when it equals ``positive``, compared as case-insensitive text: ``1``, ``1.0`` and
``"1"`` match, as do ``True``, ``true`` and a boolean column)
and the target likewise (None when missing). JSONL rows may be flat objects or contract-shaped
(``{"customer_id", "event_time", "kind", "fields": {...}}``; ``fields`` is flattened). Rows
without a customer id or with an unparsable time cannot be used: they are counted in
``info["rows_dropped"]`` and logged.

Splits: ``random`` = stratified by label with the seed (test, then validation from the rest);
``time`` = customers ordered by ``as_of``, the latest ``test_fraction`` to test and the latest
``val_fraction`` of the rest to validation; ``rows`` = the same, in the file's order (rows
already in time order). ``val: random`` takes validation as a seeded stratified
``val_fraction`` of what precedes the test part instead of its tail.

Cells before they are used (in this order): ``dtypes`` (``text`` read as text, ``float`` /
``int`` numbers: a cell that is no number becomes missing), ``recode`` (codes to names,
``{values: {1: married}, default: unknown}``), ``columns`` (derived columns, pandas
expressions; a non-finite result is missing) and ``missing`` (values meaning "not recorded",
e.g. ``{pdays: [999]}``: the field or profile value becomes None; expressions see the raw
value). ``time`` may also be ``{month: COL, weekday: COL, first_year: 2008}`` for rows in time
order with no full date (``tables.month_weekday_dates``). Without ``customer_id`` each row is
its own customer, ``<id_prefix><row>`` (zero-padded).

Wide rows (one row per customer, several events in it, e.g. ``PAY_1..PAY_6`` = six monthly
statements): ``row_events`` lists the events every row makes, each with its ``kind``, the
``fields`` it takes from which columns (every name in ``events``), its time (``time``: a fixed
date, else the row's ``time``; plus ``offset_days`` -- a number or a column -- and
``offset_hours``), an optional ``when`` (a pandas expression: the event exists only where
true) and an id suffix (``id``, default ``<position>-<kind>``)::

    customer_id: ID
    label: default_next_month
    as_of: 2005-10-01                  # the prediction time; default: the row's last event
    events: {pay_status: [categorical, {type: numeric, transform: none}], bill: numeric}
    row_events:
      - {kind: statement, id: 2005-08, time: 2005-08-31, fields: {pay_status: PAY_2, bill: BILL_2}}
      - {kind: statement, id: 2005-09, time: 2005-09-30, fields: {pay_status: PAY_1, bill: BILL_1}}

Then each row is one record (a customer id twice is an error), in file order; its events are
sorted by time (ties keep the listed order) and the profile, label and target are the row's.
An event field listed with several roles (a list) is encoded each way. The built-in credit,
telco and bank datasets are such specs (``credit.DOCUMENT`` ...).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from crmrisk.model.features import FeatureSpec, FieldRole
from crmrisk.model.features.spec import Encoding, Transform

__all__ = [
    "ColumnRole",
    "GenericSpec",
    "MonthWeekdayTime",
    "Recode",
    "RowEventSpec",
    "SplitSpec",
    "read_spec",
]

_FROZEN = ConfigDict(extra="forbid", frozen=True)


class ColumnRole(BaseModel):
    model_config = _FROZEN

    type: Encoding
    transform: Transform = "auto"


RoleLike = ColumnRole | Encoding


class SplitSpec(BaseModel):
    model_config = _FROZEN

    method: Literal["random", "time", "rows"] = "random"
    test_fraction: float = Field(0.2, gt=0, lt=1)
    val_fraction: float = Field(0.2, ge=0, lt=1)
    val: Literal["tail", "random"] = Field(
        "tail", description="time/rows: validation = the tail before test, or seeded random."
    )


Scalar = str | int | float | bool


class Recode(BaseModel):
    """Codes to names; unlisted codes become ``default`` (kept as they are without one)."""

    model_config = _FROZEN

    values: dict[Scalar, Scalar]
    default: Scalar | None = None


class MonthWeekdayTime(BaseModel):
    """Rows in time order with only a month and a weekday (``tables.month_weekday_dates``)."""

    model_config = _FROZEN

    month: str
    weekday: str
    first_year: int


class RowEventSpec(BaseModel):
    """One event each row makes (wide rows); ``fields`` maps event field -> column."""

    model_config = _FROZEN

    kind: str = Field(min_length=1)
    id: str | None = Field(None, description="Event id suffix; default <position>-<kind>.")
    time: datetime | None = Field(None, description="Fixed time; default: the row's time.")
    offset_days: float | str = Field(0.0, description="Days added: a number or a column.")
    offset_hours: float = 0
    when: str | None = Field(None, description="pandas expression; the event only where true.")
    fields: dict[str, str] = Field(min_length=1)


class GenericSpec(BaseModel):
    """Where a domain's data is and what each column means."""

    model_config = _FROZEN

    domain: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,63}$")]
    source: str = Field(description="CSV or JSONL file, relative to data_dir or absolute.")
    format: Literal["csv", "jsonl", "parquet"] | None = Field(
        None, description="Default: from the suffix."
    )
    customer_id: str | None = Field(None, description="None: each row its own customer.")
    id_prefix: str = Field("", description="Customer ids <prefix><row> without customer_id.")
    time: str | MonthWeekdayTime | None = Field(
        None, description="Event time column; None: one snapshot time."
    )
    time_unit: Literal["s", "ms", "us", "ns"] | None = Field(
        None, description="Unit of a numeric (epoch) time column; text times need none."
    )
    label: str
    positive: str | int | float | bool = 1
    target: str | None = None
    kind: str | None = None
    event_id: str | None = None
    profile: dict[str, RoleLike] = Field(default_factory=dict)
    events: dict[str, RoleLike | list[RoleLike]] = Field(default_factory=dict)
    dtypes: dict[str, Literal["text", "float", "int"]] = Field(default_factory=dict)
    recode: dict[str, Recode] = Field(default_factory=dict)
    columns: dict[str, str] = Field(default_factory=dict, description="Derived columns.")
    missing: dict[str, list[Scalar]] = Field(default_factory=dict)
    row_events: list[RowEventSpec] = Field(default_factory=list)
    as_of: Literal["last_event"] | datetime = "last_event"
    split: SplitSpec = Field(default_factory=SplitSpec)
    min_count: int = Field(5, ge=1)
    max_categories: int = Field(64, ge=1)

    @model_validator(mode="after")
    def _row_events_name_fields(self) -> GenericSpec:
        if not self.row_events:
            return self
        used = {name for event in self.row_events for name in event.fields}
        if used - set(self.events):
            raise ValueError(f"row_events fields {sorted(used - set(self.events))} not in events")
        if set(self.events) - used:
            raise ValueError(f"events {sorted(set(self.events) - used)} are in no row_events")
        return self

    def feature_spec(self) -> FeatureSpec:
        return FeatureSpec(
            domain=self.domain,
            event_fields=tuple(
                _role(name, r)
                for name, roles in self.events.items()
                for r in (roles if isinstance(roles, list) else [roles])
            ),
            profile_fields=tuple(_role(name, r) for name, r in self.profile.items()),
            min_count=self.min_count,
            max_categories=self.max_categories,
        )

    def source_columns(self) -> set[str]:
        """The file's columns the spec reads (derived columns are not in the file)."""
        out = {self.label, *self.profile, *self.dtypes, *self.recode}
        out |= {c for c in (self.customer_id, self.target, self.kind, self.event_id) if c}
        if isinstance(self.time, MonthWeekdayTime):
            out |= {self.time.month, self.time.weekday}
        elif self.time:
            out.add(self.time)
        if self.row_events:
            for event in self.row_events:
                out |= set(event.fields.values())
                if isinstance(event.offset_days, str):
                    out.add(event.offset_days)
        else:
            out |= set(self.events)
        return out - set(self.columns)


def _role(name: str, role: RoleLike) -> FieldRole:
    if isinstance(role, str):
        return FieldRole(name, role)
    return FieldRole(name, role.type, role.transform)


def read_spec(path: Path) -> GenericSpec:
    """A ``GenericSpec`` from a YAML (.yaml/.yml) or JSON file."""
    content = Path(path).read_text()
    document = json.loads(content) if Path(path).suffix == ".json" else yaml.safe_load(content)
    return GenericSpec.model_validate(document)
