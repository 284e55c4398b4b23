"""Reading a user's data file and turning its cells into contract values (shared by the spec paths).

``read_table`` reads CSV (optionally compressed), JSONL or Parquet into a DataFrame and turns
every failure to read into a ``DataError`` naming the file; ``text_values`` / ``plain`` make ids,
labels and field values plain Python, ``utc_times`` parses a time column to UTC. The spec
features that rewrite columns live here too, so both spec kinds read them alike: ``cast``
(numbers from text; cells that are no number become missing), ``recode`` (codes to names),
``derive_columns`` (pandas expressions) and ``month_weekday_dates`` (dates of rows in time
order that carry only a month and a weekday).
"""

from __future__ import annotations

import calendar
import logging
import math
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from crmrisk.stream.events import FieldValue
from crmrisk.training.datasets.errors import DataError

__all__ = [
    "Format",
    "cast",
    "derive_columns",
    "file_format",
    "month_weekday_dates",
    "plain",
    "read_table",
    "recode",
    "text",
    "text_values",
    "utc_times",
]

log = logging.getLogger(__name__)

Format = Literal["csv", "jsonl", "parquet"]
_JSONL = (".jsonl", ".ndjson")
_PARQUET = (".parquet", ".pq")


def file_format(path: Path, given: Format | None = None) -> Format:
    """The format named in the spec, else from the suffix (``x.csv.gz`` is CSV)."""
    if given:
        return given
    suffixes = [s.lower() for s in Path(path).suffixes]
    if any(s in _JSONL for s in suffixes):
        return "jsonl"
    if any(s in _PARQUET for s in suffixes):
        return "parquet"
    return "csv"


def read_table(
    path: Path,
    fmt: Format | None = None,
    text_columns: Sequence[str] = (),
    nrows: int | None = None,
) -> pd.DataFrame:
    """The file as a DataFrame; ``text_columns`` are read as text (codes like ``"C536379"``).

    JSONL rows may be contract-shaped (``{"customer_id", "event_time", "kind", "fields"}``):
    ``fields`` is flattened into columns. Raises ``DataError`` when the file cannot be read.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    kind = file_format(path, fmt)
    dtype = dict.fromkeys(text_columns, str)
    try:
        if kind == "csv":
            frame = pd.read_csv(path, dtype=dtype or None, nrows=nrows, low_memory=False)
        elif kind == "parquet":
            frame = pd.read_parquet(path)
            frame = frame.head(nrows) if nrows else frame
            frame = frame.astype(dict.fromkeys(set(text_columns) & set(frame.columns), str))
        else:
            frame = pd.read_json(path, lines=True, dtype=False, nrows=nrows)
            if "fields" in frame.columns:
                fields = pd.json_normalize(frame["fields"].tolist(), max_level=0)
                frame = pd.concat([frame.drop(columns="fields"), fields], axis=1)
    except (OSError, ValueError, UnicodeDecodeError, ImportError) as exc:
        # pandas raises ParserError / EmptyDataError (ValueError subclasses), gzip raises
        # OSError, pyarrow ArrowInvalid (a ValueError): all mean "this file is not readable".
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"cannot read {path} as {kind}: {reason}") from exc
    if frame.empty:
        raise DataError(f"{path} has no rows")
    return frame


def text(value: Any) -> str | None:
    """An id or label as text: None for missing, ``12346.0`` -> ``"12346"``, bools lower-case."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    out = str(value).strip()
    return out or None


def text_values(column: pd.Series) -> pd.Series:
    """``text`` over a column; integer-valued numbers are converted vectorised (large files)."""
    if pd.api.types.is_integer_dtype(column) and not pd.api.types.is_bool_dtype(column):
        return column.astype("Int64").astype(str).astype(object).where(column.notna(), None)
    if pd.api.types.is_float_dtype(column):
        finite = column.dropna().to_numpy()
        if np.all(np.mod(finite, 1) == 0) and np.all(np.abs(finite) < 2**53):
            out = column.astype("Int64").astype(str).astype(object)
            return out.where(column.notna(), None)
    return column.map(text)


def plain(value: Any) -> FieldValue:
    """A cell as an event-contract value (numpy scalars unwrapped, NaN -> None)."""
    if isinstance(value, np.generic):
        value = value.item()
    if (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, pd.Timestamp | datetime):
        return value.isoformat()
    return str(value)


def utc_times(
    column: pd.Series, unit: Literal["s", "ms", "us", "ns"] | None, name: str
) -> pd.Series:
    """UTC times, NaT where unparsable; naive text is UTC; epoch numbers need ``unit``.

    One format for the column is tried first (fast on large files); mixed formats fall back to
    element-wise parsing.
    """
    if pd.api.types.is_datetime64_any_dtype(column):
        times = pd.to_datetime(column, utc=True)
        return times
    if pd.api.types.is_numeric_dtype(column):
        if unit is None:
            raise DataError(
                f"time column {name!r} is numeric; set time_unit ('s', 'ms', 'us' or 'ns') to "
                "read it as epoch time"
            )
        return pd.to_datetime(column, unit=unit, utc=True, errors="coerce")
    try:
        with warnings.catch_warnings():  # "could not infer format": parsed one by one, fine
            warnings.simplefilter("ignore", UserWarning)
            return pd.to_datetime(column, utc=True)
    except (ValueError, TypeError):
        return pd.to_datetime(column, utc=True, errors="coerce", format="mixed")


def cast(frame: pd.DataFrame, dtypes: dict[str, str]) -> pd.DataFrame:
    """Columns as ``float`` or ``int`` (nullable); a cell that is no number becomes missing.

    ``text`` columns are read as text by ``read_table`` already and are left alone here.
    """
    frame = frame.copy()
    for column, kind in dtypes.items():
        if kind == "text":
            continue
        numbers = pd.to_numeric(frame[column], errors="coerce")
        frame[column] = numbers.astype(float) if kind == "float" else numbers.astype("Int64")
    return frame


def recode(column: pd.Series, values: dict[Any, Any], default: Any = None) -> pd.Series:
    """Codes to names: cells are matched as ``text`` against the keys (``1``, ``1.0`` and
    ``"1"`` are one code); an unlisted code becomes ``default``, or stays as it is without one.
    """
    names = {text(k): v for k, v in values.items()}
    keys = column.map(text)
    hit = keys.isin(list(names))
    fallback = column.astype(object) if default is None else pd.Series(default, index=column.index)
    return keys.map(names).where(hit, fallback).astype(object)


def derive_columns(domain: str, frame: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """New columns from pandas expressions over the row (``engine="python"``), in order, so a
    later one may use an earlier one. A result that is not finite (a division by zero) is
    missing, like a blank cell."""
    frame = frame.copy()
    for name, expression in columns.items():
        try:
            value = frame.eval(expression, engine="python")
        except Exception as exc:  # pandas raises many types for a bad expression
            raise DataError(
                f"{domain}: derived column {name}: cannot evaluate {expression!r}: {exc}"
            ) from exc
        if pd.api.types.is_float_dtype(value):
            value = value.where(np.isfinite(value))
        frame[name] = value
    return frame


_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def month_weekday_dates(months: pd.Series, weekdays: pd.Series, first_year: int) -> list[datetime]:
    """Approximate dates (UTC midnight) of rows in time order that give only a month and a
    weekday (``jan``... / ``mon``..., any case; full names work by their first three letters).

    Walking down the rows, the year starts at ``first_year`` and goes up whenever the month
    goes back (dec -> mar); within a (year, month) a week counter starts at 0 and goes up
    whenever the weekday goes back (fri -> mon); the date is that weekday in the month's week
    ``counter`` (weeks start on the Monday on or before the 1st; a date before the 1st moves a
    week later, one after the month's end a week earlier).
    """
    month = months.astype(str).str.lower().str[:3].map({m: i + 1 for i, m in enumerate(_MONTHS)})
    day = weekdays.astype(str).str.lower().str[:3].map({d: i for i, d in enumerate(_WEEKDAYS)})
    if month.isna().any() or day.isna().any():
        bad = months[month.isna()].tolist()[:3] + weekdays[day.isna()].tolist()[:3]
        raise DataError(f"unknown month/weekday values: {bad}")
    m = month.to_numpy(dtype=np.int64)
    d = day.to_numpy(dtype=np.int64)
    year = first_year + np.concatenate([[0], np.cumsum(np.diff(m) < 0)])
    new_month = np.concatenate([[True], (np.diff(m) != 0) | (np.diff(year) != 0)])
    went_back = np.concatenate([[False], np.diff(d) < 0]) & ~new_month
    week = pd.Series(went_back.astype(np.int64)).groupby(np.cumsum(new_month)).cumsum().to_numpy()
    dates = []
    cache: dict[tuple[int, int, int, int], datetime] = {}
    for key in zip(year.tolist(), m.tolist(), week.tolist(), d.tolist(), strict=True):
        if key not in cache:
            cache[key] = _week_date(*key)
        dates.append(cache[key])
    return dates


def _week_date(year: int, month: int, week: int, weekday: int) -> datetime:
    first = datetime(year, month, 1, tzinfo=UTC)
    monday = first - timedelta(days=first.weekday())
    date = monday + timedelta(days=7 * week + weekday)
    if date < first:
        date += timedelta(days=7)
    last = calendar.monthrange(year, month)[1]
    while date.month != month or date.day > last:
        date -= timedelta(days=7)
    return date
