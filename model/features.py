"""Feature encoding: one mapping from event and profile fields to float32 vectors.

The same fitted ``FeatureEncoder`` serves training arrays, offline evaluation and the live
stream, so a customer scored online sees exactly the numbers the model was trained on. It is
stateless per event (an event's vector depends on its kind and fields only), which lets Redis
store already-encoded vectors.

Fitting takes a ``FeatureSpec`` (which fields, and whether each is numeric or categorical) and
the *training* customers' events and profiles only:

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
- the event ``kind``: one-hot over the training kinds plus ``unknown``.

Categorical values are compared as text after normalisation, because JSON producers disagree
on types: ``2``, ``2.0`` and ``"2"`` are one category, text is stripped, ``True`` is
``"true"``, and empty text counts as missing.

Layout: event vector = [kind block | one block per event field, in spec order]; profile vector
= [one block per profile field]. A numeric block is ``[value, missing, bin_1..bin_k]`` (no bins
when linear); a categorical block is ``[vocabulary..., unknown]``.
``event_feature_names``/``profile_feature_names`` name each column.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Literal

import numpy as np

__all__ = [
    "ENCODER_FORMAT",
    "CategoricalColumn",
    "FeatureEncoder",
    "FeatureSpec",
    "FieldRole",
    "NumericColumn",
]

ENCODER_FORMAT = "crmrisk.features/2"
_READABLE_FORMATS = ("crmrisk.features/1", ENCODER_FORMAT)
UNKNOWN = "<unknown>"

Encoding = Literal["numeric", "categorical"]
Transform = Literal["auto", "none", "signed_log1p"]
NumericEncoding = Literal["ple", "linear"]
FieldValue = float | int | str | bool | None  # as in stream.events (model/ may not import it)

_INFINITIES = (math.inf, -math.inf)
_SKEW_FOR_LOG = 2.0  # |sample skewness| above which "auto" applies signed_log1p


@dataclass(frozen=True)
class FieldRole:
    """How one field is encoded. A field may appear twice (e.g. numeric and categorical)."""

    name: str
    encoding: Encoding
    transform: Transform = "auto"  # numeric only

    def __post_init__(self) -> None:
        if self.encoding not in ("numeric", "categorical"):
            raise ValueError(f"field {self.name!r}: unknown encoding {self.encoding!r}")
        if self.transform not in ("auto", "none", "signed_log1p"):
            raise ValueError(f"field {self.name!r}: unknown transform {self.transform!r}")

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "encoding": self.encoding, "transform": self.transform}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FieldRole:
        return cls(d["name"], d["encoding"], d.get("transform", "auto"))


@dataclass(frozen=True)
class FeatureSpec:
    """Which event and profile fields a domain's encoder uses, and how."""

    domain: str
    event_fields: tuple[FieldRole, ...]
    profile_fields: tuple[FieldRole, ...]
    min_count: int = 5  # rarer training categories share the unknown slot
    max_categories: int = 64  # per categorical field, most frequent first
    numeric: NumericEncoding = "ple"  # see the module docstring
    bins: int = 8  # piecewise-linear bins per numeric field (at most; ties merge edges)

    def __post_init__(self) -> None:
        for group in (self.event_fields, self.profile_fields):
            keys = [(r.name, r.encoding) for r in group]
            if len(keys) != len(set(keys)):
                raise ValueError(f"{self.domain}: a field is listed twice with one encoding")
        if self.min_count < 1 or self.max_categories < 1:
            raise ValueError("min_count and max_categories must be >= 1")
        if self.numeric not in ("ple", "linear"):
            raise ValueError(f"numeric encoding must be 'ple' or 'linear', got {self.numeric!r}")
        if self.bins < 1:
            raise ValueError(f"bins must be >= 1, got {self.bins}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "event_fields": [r.to_dict() for r in self.event_fields],
            "profile_fields": [r.to_dict() for r in self.profile_fields],
            "min_count": self.min_count,
            "max_categories": self.max_categories,
            "numeric": self.numeric,
            "bins": self.bins,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeatureSpec:
        return cls(
            domain=d["domain"],
            event_fields=tuple(FieldRole.from_dict(r) for r in d["event_fields"]),
            profile_fields=tuple(FieldRole.from_dict(r) for r in d["profile_fields"]),
            min_count=int(d.get("min_count", 5)),
            max_categories=int(d.get("max_categories", 64)),
            # Specs written before the bins existed encoded numbers linearly.
            numeric=d.get("numeric", "linear"),
            bins=int(d.get("bins", 8)),
        )


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
        number = _as_float(value)
        if number is None:
            return [0.0, 1.0] + [0.0] * (self.width - 2)
        if self.transform == "signed_log1p":
            number = math.copysign(math.log1p(abs(number)), number)
        bins = _bins_one(number, self.edges)
        if self.edges:
            number = min(max(number, self.edges[0]), self.edges[-1])
        return [(number - self.center) / self.scale, 0.0, *bins]

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

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "encoding": "categorical", "vocabulary": list(self.vocabulary)}


Column = NumericColumn | CategoricalColumn


def _as_float(value: Any) -> float | None:
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


def _category(value: Any) -> str | None:
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
    """Float64 array of numeric field values; NaN where ``_as_float`` gives None."""
    try:
        # Fast path: numpy converts None to NaN and numbers/bools/numeric text like float().
        x = np.array(values, dtype=np.float64).reshape(len(values))
    except (TypeError, ValueError, OverflowError):
        x = np.array([_as_float(v) for v in values], dtype=np.float64).reshape(len(values))
    x[~np.isfinite(x)] = np.nan
    return x


def _signed_log1p(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


def _bins_one(number: float, edges: Sequence[float]) -> list[float]:
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
    keys = [k for k in (_category(v) for v in values) if k is not None]
    if not keys:
        return CategoricalColumn(role.name, ())
    unique, counts = np.unique(np.array(keys, dtype=object), return_counts=True)
    kept = [(int(c), str(u)) for u, c in zip(unique, counts, strict=True) if c >= spec.min_count]
    kept.sort(key=lambda item: (-item[0], item[1]))
    return CategoricalColumn(role.name, tuple(v for _, v in kept[: spec.max_categories]))


def _column_from_dict(d: Mapping[str, Any]) -> Column:
    if d["encoding"] == "numeric":
        edges = tuple(float(e) for e in d.get("edges", ()))
        return NumericColumn(
            d["name"], d["transform"], float(d["center"]), float(d["scale"]), edges
        )
    if d["encoding"] == "categorical":
        return CategoricalColumn(d["name"], tuple(d["vocabulary"]))
    raise ValueError(f"unknown encoding {d['encoding']!r} for column {d.get('name')!r}")


class FeatureEncoder:
    """Turns event and profile fields into float32 vectors with statistics from training data.

    Build it with ``FeatureEncoder.fit`` (training customers only) or ``from_dict`` (a model
    manifest). ``encode_event``/``encode_profile`` encode one item for the stream;
    ``encode_events_many``/``encode_profiles_many`` are their batch twins for training arrays.
    """

    def __init__(
        self,
        spec: FeatureSpec,
        kinds: Sequence[str],
        event_columns: Sequence[Column],
        profile_columns: Sequence[Column],
    ) -> None:
        self.spec = spec
        self.domain = spec.domain
        self.kinds = tuple(kinds)
        self.event_columns = tuple(event_columns)
        self.profile_columns = tuple(profile_columns)
        self._kind_index = {k: i for i, k in enumerate(self.kinds)}
        self._unknown_kind = len(self.kinds)
        self._event_offsets = self._offsets(self.event_columns, len(self.kinds) + 1)
        self._profile_offsets = self._offsets(self.profile_columns, 0)
        self.event_dim = len(self.kinds) + 1 + sum(c.width for c in self.event_columns)
        self.profile_dim = sum(c.width for c in self.profile_columns)
        self._event_plan = self._plan(self.event_columns, self._event_offsets)
        self._profile_plan = self._plan(self.profile_columns, self._profile_offsets)

    @staticmethod
    def _offsets(columns: Sequence[Column], start: int) -> tuple[int, ...]:
        offsets = []
        for column in columns:
            offsets.append(start)
            start += column.width
        return tuple(offsets)

    # -- fitting -------------------------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        spec: FeatureSpec,
        kinds: Sequence[str],
        event_fields: Sequence[Mapping[str, FieldValue]],
        profile_fields: Sequence[Mapping[str, FieldValue]],
    ) -> FeatureEncoder:
        """Fit on training events (``kinds[i]``, ``event_fields[i]``) and training profiles."""
        if len(kinds) != len(event_fields):
            raise ValueError(f"{len(kinds)} kinds but {len(event_fields)} event field maps")
        kind_vocab = sorted({k for k in kinds if k != "profile"})
        event_columns = [cls._fit_column(r, event_fields, spec) for r in spec.event_fields]
        profile_columns = [cls._fit_column(r, profile_fields, spec) for r in spec.profile_fields]
        return cls(spec, kind_vocab, event_columns, profile_columns)

    @staticmethod
    def _fit_column(
        role: FieldRole, rows: Sequence[Mapping[str, FieldValue]], spec: FeatureSpec
    ) -> Column:
        values = [row.get(role.name) for row in rows]
        if role.encoding == "numeric":
            return _fit_numeric(role, values, spec)
        return _fit_categorical(role, values, spec)

    # -- one item (the stream) -----------------------------------------------------------------

    def encode_event(self, kind: str, fields: Mapping[str, FieldValue]) -> np.ndarray:
        """One event as a float32 vector of length ``event_dim``."""
        out = np.zeros(self.event_dim, dtype=np.float32)
        out[self._kind_index.get(kind, self._unknown_kind)] = 1.0
        self._fill_one(self._event_plan, fields, out)
        return out

    def encode_profile(self, fields: Mapping[str, FieldValue]) -> np.ndarray:
        """A profile as a float32 vector of length ``profile_dim``."""
        out = np.zeros(self.profile_dim, dtype=np.float32)
        self._fill_one(self._profile_plan, fields, out)
        return out

    @staticmethod
    def _plan(columns: Sequence[Column], offsets: Sequence[int]) -> tuple[tuple, tuple]:
        """Per-event lookups precomputed: (numeric, categorical) tuples with absolute offsets."""
        numeric, categorical = [], []
        for column, offset in zip(columns, offsets, strict=True):
            if isinstance(column, NumericColumn):
                log = column.transform == "signed_log1p"
                low, high = (column.edges[0], column.edges[-1]) if column.edges else (None, None)
                bins = tuple(pairwise(column.edges))
                numeric.append(
                    (column.name, offset, log, column.center, column.scale, low, high, bins)
                )
            else:
                index = {key: offset + i for key, i in column.index.items()}
                categorical.append((column.name, index, offset + len(column.vocabulary)))
        return tuple(numeric), tuple(categorical)

    @staticmethod
    def _fill_one(
        plan: tuple[tuple, tuple], fields: Mapping[str, FieldValue], out: np.ndarray
    ) -> None:
        numeric, categorical = plan
        for name, offset, log, center, scale, low, high, bins in numeric:
            value = fields.get(name)
            number = value if type(value) is float else _as_float(value)
            if number is None or number != number or number in _INFINITIES:
                out[offset + 1] = 1.0
                continue
            if log:
                number = math.copysign(math.log1p(abs(number)), number)
            slot = offset + 2
            for lo, hi in bins:
                if number >= hi:
                    out[slot] = 1.0
                elif number > lo:
                    out[slot] = (number - lo) / (hi - lo)
                slot += 1
            if low is not None:
                number = low if number < low else high if number > high else number
            out[offset] = (number - center) / scale
        for name, index, unknown in categorical:
            key = _category(fields.get(name))
            if key is not None:
                out[index.get(key, unknown)] = 1.0

    # -- batches (training arrays) -------------------------------------------------------------

    def encode_events_many(
        self, kinds: Sequence[str], fields: Sequence[Mapping[str, FieldValue]]
    ) -> np.ndarray:
        """Events as float32 ``(n, event_dim)``; row i equals ``encode_event(kinds[i], ...)``."""
        if len(kinds) != len(fields):
            raise ValueError(f"{len(kinds)} kinds but {len(fields)} field maps")
        out = np.zeros((len(kinds), self.event_dim), dtype=np.float32)
        kind_idx = np.fromiter(
            (self._kind_index.get(k, self._unknown_kind) for k in kinds),
            dtype=np.int64,
            count=len(kinds),
        )
        out[np.arange(len(kinds)), kind_idx] = 1.0
        self._fill_many(self.event_columns, self._event_offsets, fields, out)
        return out

    def encode_profiles_many(self, fields: Sequence[Mapping[str, FieldValue]]) -> np.ndarray:
        """Profiles as float32 ``(n, profile_dim)``; row i equals ``encode_profile(fields[i])``."""
        out = np.zeros((len(fields), self.profile_dim), dtype=np.float32)
        self._fill_many(self.profile_columns, self._profile_offsets, fields, out)
        return out

    @staticmethod
    def _fill_many(
        columns: Sequence[Column],
        offsets: Sequence[int],
        rows: Sequence[Mapping[str, FieldValue]],
        out: np.ndarray,
    ) -> None:
        n = len(rows)
        row_index = np.arange(n)
        for column, offset in zip(columns, offsets, strict=True):
            values = [row.get(column.name) for row in rows]
            if isinstance(column, NumericColumn):
                x = _floats(values)
                missing = np.isnan(x)
                if column.transform == "signed_log1p":
                    x = _signed_log1p(x)
                if column.edges:
                    out[:, offset + 2 : offset + column.width] = _bins_many(x, column.edges)
                    x = np.clip(x, column.edges[0], column.edges[-1])
                out[:, offset] = np.where(missing, 0.0, (x - column.center) / column.scale)
                out[:, offset + 1] = missing
            else:
                unknown = len(column.vocabulary)
                slot = np.fromiter(
                    (
                        -1 if (key := _category(v)) is None else column.index.get(key, unknown)
                        for v in values
                    ),
                    dtype=np.int64,
                    count=n,
                )
                present = slot >= 0
                out[row_index[present], offset + slot[present]] = 1.0

    # -- names and serialisation ---------------------------------------------------------------

    def event_feature_names(self) -> list[str]:
        names = [f"kind={k}" for k in self.kinds] + [f"kind={UNKNOWN}"]
        for column in self.event_columns:
            names.extend(column.names())
        return names

    def profile_feature_names(self) -> list[str]:
        return [name for column in self.profile_columns for name in column.names()]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description; ``from_dict`` rebuilds an encoder giving identical vectors."""
        return {
            "format": ENCODER_FORMAT,
            "domain": self.domain,
            "spec": self.spec.to_dict(),
            "kinds": list(self.kinds),
            "event_columns": [c.to_dict() for c in self.event_columns],
            "profile_columns": [c.to_dict() for c in self.profile_columns],
            "event_dim": self.event_dim,
            "profile_dim": self.profile_dim,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeatureEncoder:
        if d.get("format") not in _READABLE_FORMATS:
            raise ValueError(f"unsupported encoder format {d.get('format')!r}")
        encoder = cls(
            FeatureSpec.from_dict(d["spec"]),
            d["kinds"],
            [_column_from_dict(c) for c in d["event_columns"]],
            [_column_from_dict(c) for c in d["profile_columns"]],
        )
        if (encoder.event_dim, encoder.profile_dim) != (d["event_dim"], d["profile_dim"]):
            raise ValueError(
                f"encoder dict says dims {d['event_dim']}/{d['profile_dim']}, columns give "
                f"{encoder.event_dim}/{encoder.profile_dim}"
            )
        return encoder

    def __repr__(self) -> str:
        return (
            f"FeatureEncoder(domain={self.domain!r}, event_dim={self.event_dim}, "
            f"profile_dim={self.profile_dim}, kinds={list(self.kinds)})"
        )
