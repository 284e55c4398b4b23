"""A ``GenericSpec``'s rows, prepared: read, typed, recoded, derived, with ids and times.

``prepare_rows`` adds ``_row`` (file position), ``_cid`` (customer id) and ``_time`` (UTC event
time) to the rows ``read_rows`` read; ``contract_values`` gives a column's cells as contract
values. ``generic.py`` (one event per row) and ``row_events.py`` (wide rows) build records
from them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crmrisk.training.datasets.errors import DataError
from crmrisk.training.datasets.generic_spec import GenericSpec, MonthWeekdayTime
from crmrisk.training.datasets.tables import (
    cast,
    derive_columns,
    month_weekday_dates,
    plain,
    read_table,
    text,
    utc_times,
)
from crmrisk.training.datasets.tables import recode as recode_column

__all__ = ["SNAPSHOT", "contract_values", "prepare_rows", "read_rows"]

SNAPSHOT = datetime(2000, 1, 1, tzinfo=UTC)  # the one event time of rows without a time


def read_rows(spec: GenericSpec, path: Path) -> pd.DataFrame:
    texts = [c for c, kind in spec.dtypes.items() if kind == "text"]
    return read_table(path, spec.format, texts)


def prepare_rows(spec: GenericSpec, frame: pd.DataFrame) -> pd.DataFrame:
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
