"""``EventLogSpec``: a transaction or interaction log, and the labels to derive from it at cutoffs.

The spec names the file, the customer and time columns, how rows aggregate into events (one
per ``group_by`` value, e.g. per invoice, or one per row), each event field's aggregate, the
profile aggregates over a customer's past events, the label rule and an optional continuous
target over the ``horizon_days`` after a cutoff, and the training/test cutoffs. As YAML::

    domain: shop
    source: orders.csv                 # CSV (also .csv.gz), JSONL or Parquet
    customer_id: client
    time: ordered_at
    columns: {line_value: abs(qty) * price}   # optional derived row columns (pandas eval)
    events:
      group_by: order_no               # omit: one row, one event
      kind: {column: status, values: {refund: return}, default: purchase}
      amount: value                    # the event field with the money; signed_amount is it
      negative_kinds: [return]         #   negated for these kinds
      fields:
        value: {agg: sum, column: line_value, transform: signed_log1p}
        n_lines: {agg: count}
        gap_days: {agg: gap_days}      # days since the customer's previous event
    profile:                           # over events before the cutoff
      recency_days: {agg: days_since_last, kinds: [purchase]}
      spend_90d: {agg: sum, column: value, kinds: [purchase], within_days: 90}
    population_kinds: [purchase]       # scored at a cutoff: who had such an event before it
    label: {rule: inactivity, horizon_days: 60, kinds: [purchase]}
    # or {rule: threshold, horizon_days: 180, agg: max, column: days_past_due, op: ">=", value: 60}
    #   or {rule: column, horizon_days: 90, column: churned, positive: yes}
    target: {agg: sum, column: signed_amount, clip_min: 0}   # horizon: the label's unless given
    cutoffs: {train: [2024-01-01, 2024-04-01], test: 2024-08-01, val_fraction: 0.2}

``crmrisk spec infer DATA.csv`` writes a starting point; ``crmrisk spec check SPEC`` reports
what it gives. ``event_log.py`` reads the log, ``cutoff_records.py`` computes the records.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from crmrisk.model.features import FeatureSpec, FieldRole
from crmrisk.model.features.spec import Encoding, Transform

__all__ = [
    "ColumnLabel",
    "CutoffSpec",
    "EventFieldSpec",
    "EventLogSpec",
    "EventsSpec",
    "FutureAggregate",
    "InactivityLabel",
    "KindRule",
    "ProfileFieldSpec",
    "TargetSpec",
    "ThresholdLabel",
]

_FROZEN = ConfigDict(extra="forbid", frozen=True)
SIGNED_AMOUNT = "signed_amount"
_TEXTUAL = ("first", "last", "mode")


class EventFieldSpec(BaseModel):
    """One event field: an aggregate over the event's rows (``count`` and ``gap_days`` need no
    column). ``fill`` replaces a missing cell before aggregating."""

    model_config = _FROZEN

    agg: Literal["count", "sum", "mean", "min", "max", "nunique", "first", "last", "gap_days"]
    column: str | None = None
    type: Encoding | None = Field(None, description="Default: categorical for first/last.")
    transform: Transform = "auto"
    fill: str | float | None = None

    @model_validator(mode="after")
    def _needs_column(self) -> EventFieldSpec:
        if self.agg not in ("count", "gap_days") and self.column is None:
            raise ValueError(f"agg {self.agg!r} needs a column")
        return self

    @property
    def encoding(self) -> Encoding:
        return self.type or ("categorical" if self.agg in _TEXTUAL else "numeric")


class KindRule(BaseModel):
    """An event's kind from a column: exact ``values`` first, then ``prefixes``; otherwise
    ``default`` when set, else the value itself (``"event"`` without a column or value)."""

    model_config = _FROZEN

    column: str | None = None
    values: dict[str, str] = Field(default_factory=dict)
    prefixes: dict[str, str] = Field(default_factory=dict)
    default: str | None = None


class EventsSpec(BaseModel):
    model_config = _FROZEN

    group_by: str | None = Field(None, description="Rows with the same value: one event.")
    kind: KindRule = Field(default_factory=KindRule)
    amount: str | None = Field(None, description="The event field holding the money amount.")
    negative_kinds: list[str] = Field(default_factory=list)
    fields: dict[str, EventFieldSpec] = Field(min_length=1)


class ProfileFieldSpec(BaseModel):
    """A profile field: an aggregate over the customer's events before the cutoff, restricted
    to ``kinds`` and to the last ``within_days``. No such events: counts and sums are 0, the
    rest missing."""

    model_config = _FROZEN

    agg: Literal[
        "count",
        "sum",
        "mean",
        "min",
        "max",
        "nunique",
        "mode",
        "first",
        "last",
        "days_since_first",
        "days_since_last",
    ]
    column: str | None = None
    kinds: list[str] | None = None
    within_days: float | None = Field(None, gt=0)
    type: Encoding | None = None
    transform: Transform = "auto"

    @model_validator(mode="after")
    def _needs_column(self) -> ProfileFieldSpec:
        if self.agg not in ("count", "days_since_first", "days_since_last") and not self.column:
            raise ValueError(f"agg {self.agg!r} needs a column")
        return self

    @property
    def encoding(self) -> Encoding:
        return self.type or ("categorical" if self.agg in _TEXTUAL else "numeric")


class FutureAggregate(BaseModel):
    """An aggregate over a customer's events in ``[cutoff, cutoff + horizon)``; no such
    events: 0 for count and sum, missing otherwise."""

    model_config = _FROZEN

    agg: Literal["count", "sum", "mean", "min", "max"] = "sum"
    column: str | None = None
    kinds: list[str] | None = None

    @model_validator(mode="after")
    def _needs_column(self) -> FutureAggregate:
        if self.agg != "count" and not self.column:
            raise ValueError(f"agg {self.agg!r} needs a column")
        return self


class InactivityLabel(BaseModel):
    """1 when the customer has no event of ``kinds`` (any kind if None) in the horizon."""

    model_config = _FROZEN

    rule: Literal["inactivity"]
    horizon_days: float = Field(gt=0)
    kinds: list[str] | None = None


class ThresholdLabel(FutureAggregate):
    """1 when the future aggregate compares true with ``value`` (missing compares false)."""

    rule: Literal["threshold"]
    horizon_days: float = Field(gt=0)
    op: Literal["<", "<=", ">", ">=", "==", "!="]
    value: float


class ColumnLabel(BaseModel):
    """1 when a row in the horizon has ``column`` equal to ``positive`` (as case-insensitive
    text: ``1``, ``1.0``, ``"1"`` match; so do ``True`` and ``true``)."""

    model_config = _FROZEN

    rule: Literal["column"]
    horizon_days: float = Field(gt=0)
    column: str
    positive: str | int | float | bool = 1


Label = Annotated[InactivityLabel | ThresholdLabel | ColumnLabel, Field(discriminator="rule")]


class TargetSpec(FutureAggregate):
    """The continuous target for the quantile heads; ``horizon_days`` defaults to the label's."""

    horizon_days: float | None = Field(None, gt=0)
    clip_min: float | None = None


class CutoffSpec(BaseModel):
    """Records at each ``train`` cutoff (validation: ``val_fraction`` of the customers, seeded)
    and at the ``test`` cutoff; every training horizon must end by the test cutoff."""

    model_config = _FROZEN

    train: list[date] = Field(min_length=1)
    test: date
    val_fraction: float = Field(0.2, ge=0, lt=1)


class EventLogSpec(BaseModel):
    """Where an event log is, how its rows become events, and what to predict at cutoffs."""

    model_config = _FROZEN

    domain: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,63}$")]
    source: str = Field(description="CSV, JSONL or Parquet file, relative to data_dir or absolute.")
    format: Literal["csv", "jsonl", "parquet"] | None = None
    customer_id: str
    time: str
    time_unit: Literal["s", "ms", "us", "ns"] | None = None
    text_columns: list[str] = Field(default_factory=list, description="Read as text (codes).")
    columns: dict[str, str] = Field(default_factory=dict, description="Derived row columns.")
    events: EventsSpec
    profile: dict[str, ProfileFieldSpec] = Field(default_factory=dict)
    population_kinds: list[str] | None = None
    label: Label
    target: TargetSpec | None = None
    cutoffs: CutoffSpec
    min_count: int = Field(5, ge=1)
    max_categories: int = Field(64, ge=1)

    @model_validator(mode="after")
    def _references(self) -> EventLogSpec:
        fields = set(self.events.fields)
        if self.events.amount is not None and self.events.amount not in fields:
            raise ValueError(f"events.amount {self.events.amount!r} is not an event field")
        known = fields | ({SIGNED_AMOUNT} if self.events.amount else set())
        used = {f"profile.{n}": p.column for n, p in self.profile.items()}
        used["target"] = self.target.column if self.target else None
        used["label"] = self.label.column if isinstance(self.label, ThresholdLabel) else None
        for where, column in used.items():
            if column is not None and column not in known:
                raise ValueError(
                    f"{where} names {column!r}, not an event field (known: {sorted(known)})"
                )
        last_train = max(self.cutoffs.train)
        if last_train >= self.cutoffs.test:
            raise ValueError(
                f"training cutoff {last_train} is not before the test cutoff {self.cutoffs.test}"
            )
        return self

    @property
    def horizon_days(self) -> float:
        """The longest look-ahead (label or target) after a cutoff."""
        target = self.target.horizon_days if self.target and self.target.horizon_days else 0
        return max(self.label.horizon_days, target)

    def source_columns(self) -> set[str]:
        """The file's columns the spec reads (derived columns' inputs are not listed)."""
        ev = self.events
        out = {self.customer_id, self.time, *self.text_columns}
        out |= {c for c in (ev.group_by, ev.kind.column) if c}
        out |= {f.column for f in ev.fields.values() if f.column and f.column not in self.columns}
        if isinstance(self.label, ColumnLabel):
            out.add(self.label.column)
        return out - set(self.columns)

    def feature_spec(self) -> FeatureSpec:
        return FeatureSpec(
            domain=self.domain,
            event_fields=tuple(
                FieldRole(n, f.encoding, f.transform) for n, f in self.events.fields.items()
            ),
            profile_fields=tuple(
                FieldRole(n, p.encoding, p.transform) for n, p in self.profile.items()
            ),
            min_count=self.min_count,
            max_categories=self.max_categories,
        )


def utc_day(day: date | datetime | str) -> datetime:
    """A cutoff as a UTC datetime (a date is its UTC midnight)."""
    if isinstance(day, str):
        day = datetime.fromisoformat(day)
    if not isinstance(day, datetime):
        return datetime(day.year, day.month, day.day, tzinfo=UTC)
    return day.replace(tzinfo=UTC) if day.tzinfo is None else day.astimezone(UTC)
