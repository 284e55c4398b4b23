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
``val_fraction`` of the rest to validation.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from model.features import FeatureSpec, FieldRole
from training.datasets.errors import DataError
from training.datasets.records import (
    CustomerRecord,
    DomainDataset,
    group_by_split,
    validate_events,
)
from training.datasets.splits import ordered_splits, random_splits
from training.datasets.tables import plain, read_table, text, utc_times

__all__ = ["ColumnRole", "GenericSpec", "SplitSpec", "build_records", "load", "read_spec"]

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

    method: Literal["random", "time"] = "random"
    test_fraction: float = Field(0.2, gt=0, lt=1)
    val_fraction: float = Field(0.2, ge=0, lt=1)


class GenericSpec(BaseModel):
    """Where a domain's data is and what each column means."""

    model_config = _FROZEN

    domain: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,63}$")]
    source: str = Field(description="CSV or JSONL file, relative to data_dir or absolute.")
    format: Literal["csv", "jsonl", "parquet"] | None = Field(
        None, description="Default: from the suffix."
    )
    customer_id: str
    time: str | None = Field(None, description="Event time column; None: one snapshot time.")
    time_unit: Literal["s", "ms", "us", "ns"] | None = Field(
        None, description="Unit of a numeric (epoch) time column; text times need none."
    )
    label: str
    positive: str | int | float | bool = 1
    target: str | None = None
    kind: str | None = None
    event_id: str | None = None
    profile: dict[str, RoleLike] = Field(default_factory=dict)
    events: dict[str, RoleLike] = Field(default_factory=dict)
    split: SplitSpec = Field(default_factory=SplitSpec)
    min_count: int = Field(5, ge=1)
    max_categories: int = Field(64, ge=1)

    def feature_spec(self) -> FeatureSpec:
        return FeatureSpec(
            domain=self.domain,
            event_fields=tuple(_role(name, r) for name, r in self.events.items()),
            profile_fields=tuple(_role(name, r) for name, r in self.profile.items()),
            min_count=self.min_count,
            max_categories=self.max_categories,
        )


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
    return read_table(path, spec.format)


def build_records(
    spec: GenericSpec, frame: pd.DataFrame
) -> tuple[list[CustomerRecord], dict[str, int]]:
    """Records per customer (split "train" as a placeholder) and counts of dropped rows."""
    needed = [spec.customer_id, spec.label, *spec.profile, *spec.events]
    needed += [c for c in (spec.time, spec.target, spec.kind, spec.event_id) if c]
    missing = sorted(set(needed) - set(frame.columns))
    if missing:
        raise DataError(
            f"{spec.domain}: columns {missing} named in the spec are not in the data "
            f"(it has {sorted(map(str, frame.columns))[:20]})"
        )
    data = frame.reset_index(drop=True)
    data["_row"] = np.arange(len(data))
    data["_cid"] = data[spec.customer_id].map(text)
    if spec.time:
        data["_time"] = utc_times(data[spec.time], spec.time_unit, spec.time)
    else:
        data["_time"] = pd.Timestamp(SNAPSHOT)
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
    columns = {c: [plain(v) for v in data[c].tolist()] for c in spec.events}
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
                as_of=times[rows[-1]],
            )
        )
    return records, dropped


def load(spec: GenericSpec, data_dir: Path, seed: int = 0) -> DomainDataset:
    """Read ``spec.source``, build records and split them as ``spec.split`` says."""
    path = Path(spec.source)
    path = path if path.is_absolute() else Path(data_dir) / path
    if not path.is_file():
        raise DataError(f"{spec.domain}: data file not found: {path}")
    records, dropped = build_records(spec, read_rows(spec, path))
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
        names = ordered_splits(len(records), rule.test_fraction, rule.val_fraction)
    else:
        names = random_splits(
            [r.label for r in records], seed, rule.test_fraction, rule.val_fraction
        )
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
