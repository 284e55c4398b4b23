"""Fitted columns: how one field's value becomes its block of the vector, and how it is fitted.

- numeric: optional ``signed_log1p`` (``sign(x) * log1p(|x|)``, for money and counts), then
  ``(x - median) / max(IQR / 1.349, std)`` (1 when both are zero), plus a missing indicator
  (None, blanks, NaN, unparsable text; on the stream, ``stream/field_contract.py`` makes
  unparsable text and booleans dead letters first, or counts them). ``transform="auto"``
  picks ``signed_log1p`` when the training values are strongly skewed. Two numeric
  encodings (``FeatureSpec.numeric``):

  * ``"ple"`` (the default): the scaled value is clipped to the training range, and
    piecewise-linear bins follow it (Gorishniy et al. 2022, "On Embeddings for Numerical
    Features"): with edges ``e_0 < ... < e_k`` at training quantiles, bin ``i`` is
    ``clip((x - e_i) / (e_{i+1} - e_i), 0, 1)``. Every part saturates outside the training
    range, so a value beyond anything seen in training encodes exactly like the nearest
    training extreme: a network then behaves like a tree there instead of extrapolating a
    trend it never saw (bank marketing's 2010 interest rates lie below the whole training
    period; an unclipped input sent the networks' scores the wrong way).
  * ``"linear"``: the scaled value, never clipped (extrapolates linearly; what a logistic
    regression expects). Encoders saved before the bins existed (format ``/1``) are linear.
- categorical: one-hot over the training vocabulary (values seen at least ``min_count`` times,
  the ``max_categories`` most frequent) plus one ``unknown`` slot for anything else, so a value
  first seen while serving never fails; a missing value leaves the block all zero.

Categorical values are compared as text after normalisation, because JSON producers disagree
on types: ``2``, ``2.0`` and ``"2"`` are one category, text is stripped, ``True`` is
``"true"``, and empty text counts as missing.

A numeric block is ``[value, missing, bin_1..bin_k]`` (no bins when linear); a categorical block
is ``[vocabulary..., unknown]``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Literal

import numpy as np

from crmrisk.model.features.spec import FeatureSpec, FieldRole, FieldValue

__all__ = [
    "UNKNOWN",
    "CategoricalColumn",
    "Column",
    "NumericColumn",
    "as_category",
    "as_float",
    "bins_one",
    "column_from_dict",
    "fit_column",
]

UNKNOWN = "<unknown>"
_SKEW_FOR_LOG = 2.0  # |sample skewness| above which "auto" applies signed_log1p


@dataclass(frozen=True)
class NumericColumn:
    """A fitted numeric field: ``[(t(x) - center) / scale, missing, bins...]``.

    ``edges`` (in ``t`` units, increasing) are empty for a linear column; otherwise the value is
    clipped to ``[edges[0], edges[-1]]`` (the training range) and ``len(edges) - 1`` bins follow.

    >>> c = NumericColumn("x", "none", 0.0, 1.0, (0.0, 1.0, 3.0))
    >>> c.encode(2.0), c.encode(10.0) == c.encode(3.0)
    ([2.0, 0.0, 1.0, 0.5], True)
    """

    name: str
    transform: Literal["none", "signed_log1p"]
    center: float
    scale: float
    edges: tuple[float, ...] = ()

    @property
    def width(self) -> int:
        return 2 + max(len(self.edges) - 1, 0)

    def names(self) -> list[str]:
        bins = [f"{self.name}:bin[{lo:.4g},{hi:.4g}]" for lo, hi in pairwise(self.edges)]
        return [self.name, f"{self.name}:missing", *bins]

    def encode(self, value: Any) -> list[float]:
        """One value's block (the reference the vectorised paths are tested against)."""
        number = as_float(value)
        if number is None:
            return [0.0, 1.0] + [0.0] * (self.width - 2)
        if self.transform == "signed_log1p":
            number = math.copysign(math.log1p(abs(number)), number)
        bins = bins_one(number, self.edges)
        if self.edges:
            number = min(max(number, self.edges[0]), self.edges[-1])
        return [(number - self.center) / self.scale, 0.0, *bins]

    def fill_many(self, values: Sequence[Any], out: np.ndarray, offset: int) -> None:
        """Write ``len(values)`` blocks into ``out[:, offset : offset + width]``, vectorised."""
        x = _floats(values)
        missing = np.isnan(x)
        if self.transform == "signed_log1p":
            x = _signed_log1p(x)
        if self.edges:
            out[:, offset + 2 : offset + self.width] = _bins_many(x, self.edges)
            x = np.clip(x, self.edges[0], self.edges[-1])
        out[:, offset] = np.where(missing, 0.0, (x - self.center) / self.scale)
        out[:, offset + 1] = missing

    def to_dict(self) -> dict[str, Any]:
        d = {
            "name": self.name,
            "encoding": "numeric",
            "transform": self.transform,
            "center": self.center,
            "scale": self.scale,
        }
        if self.edges:
            d["edges"] = list(self.edges)
        return d


@dataclass(frozen=True)
class CategoricalColumn:
    """A fitted categorical field: one-hot over ``vocabulary`` plus an unknown slot."""

    name: str
    vocabulary: tuple[str, ...]
    index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", {v: i for i, v in enumerate(self.vocabulary)})

    @property
    def width(self) -> int:
        return len(self.vocabulary) + 1

    def names(self) -> list[str]:
        return [f"{self.name}={v}" for v in self.vocabulary] + [f"{self.name}={UNKNOWN}"]

    def fill_many(self, values: Sequence[Any], out: np.ndarray, offset: int) -> None:
        """Write ``len(values)`` one-hot blocks into ``out[:, offset : offset + width]``."""
        unknown = len(self.vocabulary)
        slot = np.fromiter(
            (
                -1 if (key := as_category(v)) is None else self.index.get(key, unknown)
                for v in values
            ),
            dtype=np.int64,
            count=len(values),
        )
        present = slot >= 0
        out[np.arange(len(values))[present], offset + slot[present]] = 1.0

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "encoding": "categorical", "vocabulary": list(self.vocabulary)}


Column = NumericColumn | CategoricalColumn


def as_float(value: Any) -> float | None:
    """A numeric field value, or None when missing/unparsable/non-finite."""
    if value is None:
        return None
    if isinstance(value, bool | np.bool_):
        return 1.0 if value else 0.0
    if isinstance(value, numbers.Real):  # int, float and numpy scalars
        try:
            number = float(value)
        except OverflowError:  # an int beyond float range
            return None
    elif isinstance(value, str):
        try:
            number = float(value)
        except (ValueError, OverflowError):
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def as_category(value: Any) -> str | None:
    """A categorical field value as normalised text, or None when missing."""
    kind = type(value)
    if kind is str:  # the common cases first: abc isinstance checks are slow
        return value.strip() or None
    if kind is int:
        return str(value)
    if value is None:
        return None
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        number = float(value)
        if not math.isfinite(number):
            return None
        return str(int(number)) if number.is_integer() else repr(number)
    text = str(value).strip()
    return text or None


def _floats(values: Sequence[Any]) -> np.ndarray:
    """Float64 array of numeric field values; NaN where ``as_float`` gives None."""
    try:
        # Fast path: numpy converts None to NaN and numbers/bools/numeric text like float().
        x = np.array(values, dtype=np.float64).reshape(len(values))
    except (TypeError, ValueError, OverflowError):
        x = np.array([as_float(v) for v in values], dtype=np.float64).reshape(len(values))
    x[~np.isfinite(x)] = np.nan
    return x


def _signed_log1p(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


def bins_one(number: float, edges: Sequence[float]) -> list[float]:
    """Piecewise-linear bins of one (transformed) value: each in [0, 1], saturating."""
    out = []
    for lo, hi in pairwise(edges):
        out.append(0.0 if number <= lo else 1.0 if number >= hi else (number - lo) / (hi - lo))
    return out


def _bins_many(x: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """``(n,)`` transformed values -> ``(n, k)`` bins; NaN rows come out all zero."""
    e = np.asarray(edges, dtype=np.float64)
    lo, hi = e[:-1], e[1:]
    with np.errstate(invalid="ignore"):
        bins = np.clip((x[:, None] - lo) / (hi - lo), 0.0, 1.0)
    return np.nan_to_num(bins, nan=0.0)


def _fit_edges(t: np.ndarray, bins: int) -> tuple[float, ...]:
    """Quantile edges of the training values; ties merge, so a constant field has no bins."""
    if t.size == 0:
        return ()
    edges = np.unique(np.quantile(t, np.linspace(0.0, 1.0, bins + 1)))
    return tuple(float(e) for e in edges)  # one edge (a constant field): clipped, no bins


def _fit_numeric(role: FieldRole, values: Sequence[Any], spec: FeatureSpec) -> NumericColumn:
    raw = _floats(values)
    finite = raw[np.isfinite(raw)]
    transform = role.transform
    if transform == "auto":
        transform = "none"
        if finite.size > 2 and np.unique(finite).size > 2:
            std = finite.std()
            skew = float(np.mean(((finite - finite.mean()) / std) ** 3)) if std > 0 else 0.0
            if abs(skew) > _SKEW_FOR_LOG:
                transform = "signed_log1p"
    t = _signed_log1p(finite) if transform == "signed_log1p" else finite
    if t.size == 0:
        return NumericColumn(role.name, transform, 0.0, 1.0)
    q25, center, q75 = np.percentile(t, [25, 50, 75])
    # Never below the standard deviation: where most values sit on a spike (a rate that rarely
    # moves) the IQR collapses and would blow the other training values up to tens of units.
    scale = max((q75 - q25) / 1.349, float(t.std()))
    if not scale > 1e-9:
        scale = 1.0
    edges = _fit_edges(t, spec.bins) if spec.numeric == "ple" else ()
    return NumericColumn(role.name, transform, float(center), float(scale), edges)


def _fit_categorical(role: FieldRole, values: Sequence[Any], spec: FeatureSpec) -> Column:
    keys = [k for k in (as_category(v) for v in values) if k is not None]
    if not keys:
        return CategoricalColumn(role.name, ())
    unique, counts = np.unique(np.array(keys, dtype=object), return_counts=True)
    kept = [(int(c), str(u)) for u, c in zip(unique, counts, strict=True) if c >= spec.min_count]
    kept.sort(key=lambda item: (-item[0], item[1]))
    return CategoricalColumn(role.name, tuple(v for _, v in kept[: spec.max_categories]))


def fit_column(
    role: FieldRole, rows: Sequence[Mapping[str, FieldValue]], spec: FeatureSpec
) -> Column:
    """``role``'s column fitted on the training ``rows`` (event fields or profiles)."""
    values = [row.get(role.name) for row in rows]
    if role.encoding == "numeric":
        return _fit_numeric(role, values, spec)
    return _fit_categorical(role, values, spec)


def column_from_dict(d: Mapping[str, Any]) -> Column:
    if d["encoding"] == "numeric":
        edges = tuple(float(e) for e in d.get("edges", ()))
        return NumericColumn(
            d["name"], d["transform"], float(d["center"]), float(d["scale"]), edges
        )
    if d["encoding"] == "categorical":
        return CategoricalColumn(d["name"], tuple(d["vocabulary"]))
    raise ValueError(f"unknown encoding {d['encoding']!r} for column {d.get('name')!r}")
