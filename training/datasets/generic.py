"""Records from a ``GenericSpec``'s rows (one event per row), split as the spec says.

The spec and its file format are described in ``generic_spec.py``; rows are prepared by
``generic_rows.py``; wide rows (several events per row, ``row_events``) become records in
``row_events.py``.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from crmrisk.training.datasets import row_events
from crmrisk.training.datasets.errors import DataError
from crmrisk.training.datasets.event_log_spec import utc_day
from crmrisk.training.datasets.generic_rows import contract_values, prepare_rows, read_rows
from crmrisk.training.datasets.generic_spec import GenericSpec
from crmrisk.training.datasets.records import (
    CustomerRecord,
    DomainDataset,
    group_by_split,
    validate_events,
)
from crmrisk.training.datasets.source import FileKey, file_key
from crmrisk.training.datasets.splits import ordered_splits, random_splits
from crmrisk.training.datasets.tables import plain, text

__all__ = ["build_records", "load"]

log = logging.getLogger(__name__)


def build_records(
    spec: GenericSpec, frame: pd.DataFrame
) -> tuple[list[CustomerRecord], dict[str, int]]:
    """Records per customer (split "train" as a placeholder) and counts of dropped rows."""
    data = prepare_rows(spec, frame)
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
