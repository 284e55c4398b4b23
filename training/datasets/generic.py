"""A new domain without new code: a CSV, JSONL or Parquet file plus a small ``GenericSpec``.

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

import functools
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from model.features import FeatureSpec, FieldRole
from training.datasets.errors import DataError
from training.datasets.event_log_spec import utc_day
from training.datasets.records import (
    CustomerRecord,
    DomainDataset,
    group_by_split,
    validate_events,
)
from training.datasets.source import FileKey, file_key
from training.datasets.splits import ordered_splits, random_splits
from training.datasets.tables import (
    cast,
    derive_columns,
    month_weekday_dates,
    plain,
    read_table,
    text,
    utc_times,
)
from training.datasets.tables import recode as recode_column

__all__ = [
    "ColumnRole",
    "GenericSpec",
    "MonthWeekdayTime",
    "Recode",
    "RowEventSpec",
    "SplitSpec",
    "build_records",
    "load",
    "read_spec",
]

log = logging.getLogger(__name__)

_FROZEN = ConfigDict(extra="forbid", frozen=True)
SNAPSHOT = datetime(2000, 1, 1, tzinfo=UTC)


class ColumnRole(BaseModel):
    model_config = _FROZEN

    type: Literal["numeric", "categorical"]
    transform: Literal["auto", "none", "signed_log1p"] = "auto"


RoleLike = ColumnRole | Literal["numeric", "categorical"]


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


def read_rows(spec: GenericSpec, path: Path) -> pd.DataFrame:
    texts = [c for c, kind in spec.dtypes.items() if kind == "text"]
    return read_table(path, spec.format, texts)


def _prepare(spec: GenericSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """The rows with ``_row``, ``_cid`` and ``_time``, after dtypes, recode and columns."""
    missing = sorted(spec.source_columns() - set(frame.columns))
    if missing:
        raise DataError(
            f"{spec.domain}: columns {missing} named in the spec are not in the data "
            f"(it has {sorted(map(str, frame.columns))[:20]})"
        )
    data = cast(frame.reset_index(drop=True), spec.dtypes)
    for column, rule in spec.recode.items():
        data[column] = recode_column(data[column], rule.values, rule.default)
    data = derive_columns(spec.domain, data, spec.columns)
    data["_row"] = np.arange(len(data))
    if spec.customer_id:
        data["_cid"] = data[spec.customer_id].map(text)
    else:
        width = len(str(max(len(data) - 1, 0)))
        data["_cid"] = [f"{spec.id_prefix}{r:0{width}d}" for r in range(len(data))]
    if isinstance(spec.time, MonthWeekdayTime):
        rule = spec.time
        try:
            dates = month_weekday_dates(data[rule.month], data[rule.weekday], rule.first_year)
        except DataError as exc:
            raise DataError(f"{spec.domain}: {exc}") from None
        data["_time"] = pd.to_datetime(dates, utc=True)
    elif spec.time:
        data["_time"] = utc_times(data[spec.time], spec.time_unit, spec.time)
    else:
        data["_time"] = pd.Timestamp(SNAPSHOT)
    return data


def contract_values(spec: GenericSpec, data: pd.DataFrame, column: str) -> list[Any]:
    """A column's cells as contract values, ``missing`` sentinels as None."""
    values = [plain(v) for v in data[column].tolist()]
    sentinels = spec.missing.get(column)
    if not sentinels:
        return values
    drop = {text(s) for s in sentinels}
    return [None if text(v) in drop else v for v in values]


def build_records(
    spec: GenericSpec, frame: pd.DataFrame
) -> tuple[list[CustomerRecord], dict[str, int]]:
    """Records per customer (split "train" as a placeholder) and counts of dropped rows."""
    data = _prepare(spec, frame)
    no_id = int(data["_cid"].isna().sum())
    bad_time = int((data["_cid"].notna() & data["_time"].isna()).sum())
    data = data[data["_cid"].notna() & data["_time"].notna()]
    dropped = {"rows_without_customer_id": no_id, "rows_with_bad_time": bad_time}
    if no_id or bad_time:
        log.warning(
            "%s: dropped %d rows without a customer id, %d with an unparsable time",
            spec.domain,
            no_id,
            bad_time,
        )
    if spec.row_events:
        from training.datasets import row_events  # it reads GenericSpec: imported late

        return row_events.build_records(spec, data.reset_index(drop=True)), dropped
    data = data.sort_values(["_cid", "_time", "_row"], kind="stable").reset_index(drop=True)
    width = len(str(max(len(frame) - 1, 0)))
    cids = data["_cid"].tolist()
    times = data["_time"].dt.to_pydatetime().tolist()
    generated = [f"{c}-{r:0{width}d}" for c, r in zip(cids, data["_row"].tolist(), strict=True)]
    ids = generated
    if spec.event_id:
        given = data[spec.event_id].map(text).tolist()
        ids = [g if g is not None else d for g, d in zip(given, generated, strict=True)]
    kinds = data[spec.kind].map(text).fillna("event").tolist() if spec.kind else None
    columns = {c: contract_values(spec, data, c) for c in spec.events}
    events = validate_events(
        [
            {
                "event_id": ids[j],
                "customer_id": cids[j],
                "event_time": times[j],
                "domain": spec.domain,
                "kind": kinds[j] if kinds else "event",
                "fields": {c: columns[c][j] for c in spec.events},
            }
            for j in range(len(data))
        ]
    )
    # Per customer, each column's last non-missing value (groupby.last skips missing values).
    wanted = list(
        dict.fromkeys([*spec.profile, spec.label, *([spec.target] if spec.target else [])])
    )
    last = data.groupby("_cid", sort=True)[wanted].last()
    for column in set(spec.missing) & set(wanted):
        values = contract_values(spec, last, column)
        last[column] = pd.Series(values, index=last.index, dtype=object)
    bounds = data.groupby("_cid", sort=True).indices
    # Case-insensitive: pandas reads a True/False column as booleans ("true"), YAML may say "True".
    positive = (text(spec.positive) or "").casefold()
    records = []
    for cid, row in zip(last.index, last.to_dict("records"), strict=True):
        rows = bounds[cid]  # contiguous: data is sorted by customer
        label = text(row[spec.label])
        target = plain(row[spec.target]) if spec.target else None
        records.append(
            CustomerRecord(
                customer_id=cid,
                profile={c: plain(row[c]) for c in spec.profile},
                events=events[rows[0] : rows[-1] + 1],
                label=int(label is not None and label.casefold() == positive),
                target=None if target is None else float(target),
                split="train",
                as_of=times[rows[-1]] if spec.as_of == "last_event" else utc_day(spec.as_of),
            )
        )
    return records, dropped


@functools.lru_cache(maxsize=8)
def _cached_records(
    spec_json: str, key: FileKey
) -> tuple[tuple[CustomerRecord, ...], dict[str, int]]:
    # Parsing and record building are per file contents; the benchmark reloads many times.
    spec = GenericSpec.model_validate_json(spec_json)
    records, dropped = build_records(spec, read_rows(spec, Path(key[0])))
    return tuple(records), dropped


def load(spec: GenericSpec, data_dir: Path, seed: int = 0) -> DomainDataset:
    """Read ``spec.source``, build records and split them as ``spec.split`` says."""
    path = Path(spec.source)
    path = path if path.is_absolute() else Path(data_dir) / path
    if not path.is_file():
        raise DataError(f"{spec.domain}: data file not found: {path}")
    records, dropped = _cached_records(spec.model_dump_json(), file_key(path))
    if not records:
        raise DataError(f"{spec.domain}: no usable rows in {path}")
    positives = sum(r.label for r in records)
    if positives in (0, len(records)):  # nothing to learn, and every AUC would be undefined
        raise DataError(
            f"{spec.domain}: all {len(records)} customers have label "
            f"{'1' if positives else '0'}: does positive={spec.positive!r} match the values of "
            f"column {spec.label!r}?"
        )
    rule = spec.split
    if rule.method == "time":
        records = sorted(records, key=lambda r: (r.as_of, r.customer_id))
    if rule.method == "random":
        names = random_splits(
            [r.label for r in records], seed, rule.test_fraction, rule.val_fraction
        )
    elif rule.val == "tail":
        names = ordered_splits(len(records), rule.test_fraction, rule.val_fraction)
    else:  # the test tail by order, validation a seeded stratified part of what precedes it
        names = ordered_splits(len(records), rule.test_fraction, val_fraction=0.0)
        head = np.flatnonzero(names == "train")
        picked = random_splits([records[i].label for i in head], seed, rule.val_fraction, 0.0)
        names[head[picked == "test"]] = "val"
    groups = group_by_split(records, names)
    return DomainDataset(
        domain=spec.domain,
        spec=spec.feature_spec(),
        train=groups["train"],
        val=groups["val"],
        test=groups["test"],
        has_target=spec.target is not None,
        info={
            "source": str(path),
            "split": rule.model_dump(),
            "seed": seed,
            **dropped,
            "generic_spec": spec.model_dump(mode="json"),
        },
    )
