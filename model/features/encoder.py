"""The ``FeatureEncoder``: one mapping from event and profile fields to float32 vectors.

The same fitted encoder serves training arrays, offline evaluation and the live stream, so a
customer scored online sees exactly the numbers the model was trained on. It is stateless per
event (an event's vector depends on its kind and fields only), which lets Redis store
already-encoded vectors. Fitting takes a ``FeatureSpec`` (``model/features/spec.py``) and the
*training* customers' events and profiles only; each field becomes a fitted column
(``model/features/columns.py``), and the event ``kind`` is one-hot over the training kinds plus
``unknown``.

Layout: event vector = [kind block | one block per event field, in spec order]; profile vector
= [one block per profile field]. ``event_feature_names``/``profile_feature_names`` name each
column.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Any

import numpy as np

from crmrisk.model.features.columns import (
    UNKNOWN,
    Column,
    NumericColumn,
    as_category,
    as_float,
    column_from_dict,
    fit_column,
)
from crmrisk.model.features.spec import FeatureSpec, FieldValue

__all__ = ["ENCODER_FORMAT", "FeatureEncoder"]

ENCODER_FORMAT = "crmrisk.features/2"
_READABLE_FORMATS = ("crmrisk.features/1", ENCODER_FORMAT)
_INFINITIES = (math.inf, -math.inf)


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
        event_columns = [fit_column(r, event_fields, spec) for r in spec.event_fields]
        profile_columns = [fit_column(r, profile_fields, spec) for r in spec.profile_fields]
        return cls(spec, kind_vocab, event_columns, profile_columns)

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
            number = value if type(value) is float else as_float(value)
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
            key = as_category(fields.get(name))
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
        for column, offset in zip(columns, offsets, strict=True):
            column.fill_many([row.get(column.name) for row in rows], out, offset)

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
            [column_from_dict(c) for c in d["event_columns"]],
            [column_from_dict(c) for c in d["profile_columns"]],
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
