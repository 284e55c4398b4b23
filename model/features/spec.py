"""What a domain's encoder reads: which event and profile fields, each numeric or categorical.

A ``FeatureSpec`` is part of a model's manifest (``to_dict``/``from_dict``); the training data
modules (``training/datasets``) declare one per domain, and ``FeatureEncoder.fit`` turns it and
the training data into fitted columns (``model/features/columns.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

__all__ = ["Encoding", "FeatureSpec", "FieldRole", "FieldValue", "NumericEncoding", "Transform"]

Encoding = Literal["numeric", "categorical"]
Transform = Literal["auto", "none", "signed_log1p"]
NumericEncoding = Literal["ple", "linear"]
FieldValue = float | int | str | bool | None  # as in stream.events (model/ may not import it)


@dataclass(frozen=True)
class FieldRole:
    """How one field is encoded. A field may appear twice (e.g. numeric and categorical)."""

    name: str
    encoding: Encoding
    transform: Transform = "auto"  # numeric only

    def __post_init__(self) -> None:
        if self.encoding not in get_args(Encoding):
            raise ValueError(f"field {self.name!r}: unknown encoding {self.encoding!r}")
        if self.transform not in get_args(Transform):
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
    numeric: NumericEncoding = "ple"  # see model/features/columns.py
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
