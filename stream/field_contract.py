"""The field contract of a domain: which field values, names and kinds its model can encode.

Derived from the model's ``FeatureSpec`` (and the kinds its encoder was fitted on), checked per
domain on a batch's decoded events before encoding (``stream/encode.py``'s ``encode``):

- **numeric** fields (a field with a numeric role, e.g. credit's ``pay_status``, also
  categorical) take a JSON number or null. Text that Python's ``float()`` parses to a finite
  number (``"12.5"``, ``" 7 "``) is accepted as that number and counted (coerced ``to="number"``):
  the encoder has always parsed it, and CSV-fed producers send it. Blank text is a missing value
  (the encoder's documented missing indicator), counted ``to="missing"``. Anything else
  (``"abc"``, ``"nan"``, ``true``/``false``) is an ``invalid_field_value``.
- **categorical** fields take any JSON scalar (the wire schema already refuses arrays and
  objects): ``2``, ``"2"`` and ``true`` are categories (``model/features.py`` normalises them as
  text; generic CSV domains carry booleans), and a value outside the training vocabulary is the
  encoder's ``unknown`` slot by design, so no categorical value is out of contract.
- a field name neither side of the spec knows (events: its event fields; profiles: its profile
  fields and the exposure field), and an event kind the encoder was not fitted on: counted per
  name; dead letters (``unknown_field``, ``unknown_kind``) only under ``unknown="reject"``.

``policy`` decides what an invalid value does: ``"strict"`` (the default setting) makes the
event a dead letter naming the field, the value and the expected type; ``"coerce"`` encodes the
value as missing and counts it (``to="missing"``).

Cost: one ``type()`` per numeric field value and one set check of the field names per event;
only rows with a value that is not an int, float or null are looked at one by one.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["FieldContract", "FieldPolicy", "UnknownPolicy", "Verdict"]

FieldPolicy = Literal["strict", "coerce"]
UnknownPolicy = Literal["count", "reject"]

_PLAIN = frozenset({int, float, type(None)})  # numeric values needing no look (bool is not int)
_SHOWN = 40  # characters of a bad value quoted in a dead letter
_NAMED = 5  # unknown names quoted in a dead letter


@dataclass
class Verdict:
    """What the contract says about a block of events (rows are positions in the block)."""

    rejected: dict[int, tuple[str, str]] = field(default_factory=dict)  # row -> (reason, error)
    fixed: dict[int, dict] = field(default_factory=dict)  # row -> fields to encode instead
    coerced: Counter = field(default_factory=Counter)  # (field, "number" | "missing") -> n
    unknown_fields: Counter = field(default_factory=Counter)  # field -> n
    unknown_kinds: Counter = field(default_factory=Counter)  # kind -> n


@dataclass(frozen=True)
class FieldContract:
    """One domain's contract (see the module docstring); ``check`` applies it to a block."""

    domain: str
    kinds: frozenset[str]
    event_numeric: tuple[str, ...]
    profile_numeric: tuple[str, ...]
    event_names: frozenset[str]
    profile_names: frozenset[str]
    policy: FieldPolicy
    unknown: UnknownPolicy

    def __post_init__(self) -> None:
        if self.policy not in ("strict", "coerce"):
            raise ValueError(f"field policy must be 'strict' or 'coerce', got {self.policy!r}")
        if self.unknown not in ("count", "reject"):
            raise ValueError(f"unknown policy must be 'count' or 'reject', got {self.unknown!r}")

    @classmethod
    def of(
        cls,
        encoder: Any,
        policy: FieldPolicy,
        unknown: UnknownPolicy,
        exposure_field: str | None,
    ) -> FieldContract:
        """The contract of a fitted ``model.FeatureEncoder`` (its ``spec`` and ``kinds``)."""
        spec = encoder.spec
        extra = {exposure_field} if exposure_field else set()
        return cls(
            domain=spec.domain,
            kinds=frozenset(encoder.kinds) | {"profile"},
            event_numeric=_numeric(spec.event_fields),
            profile_numeric=_numeric(spec.profile_fields),
            event_names=frozenset(r.name for r in spec.event_fields),
            profile_names=frozenset(r.name for r in spec.profile_fields) | extra,
            policy=policy,
            unknown=unknown,
        )

    def check(
        self, kinds: Sequence[str], fields: Sequence[Mapping[str, Any]], profile: bool
    ) -> Verdict:
        """The verdict on events (``profile``: profiles) ``kinds[i]``, ``fields[i]``."""
        out = Verdict()
        numeric = self.profile_numeric if profile else self.event_numeric
        for name in numeric:
            values = [f.get(name) for f in fields]
            if set(map(type, values)) <= _PLAIN:  # the common case: nothing to look at
                continue
            for row, value in enumerate(values):
                if type(value) not in _PLAIN:
                    self._numeric_value(out, row, fields[row], name, value)
        known = self.profile_names if profile else self.event_names
        for row, names in enumerate(fields):
            if not known.issuperset(names):
                unknown = [n for n in names if n not in known]
                out.unknown_fields.update(unknown)
                if self.unknown == "reject" and row not in out.rejected:
                    out.rejected[row] = ("unknown_field", self._unknown_fields(kinds[row], unknown))
        if not profile and not self.kinds.issuperset(kinds):
            for row, kind in enumerate(kinds):
                if kind not in self.kinds:
                    out.unknown_kinds[kind] += 1
                    if self.unknown == "reject" and row not in out.rejected:
                        out.rejected[row] = ("unknown_kind", self._unknown_kind(kind))
        for row, (reason, error) in out.rejected.items():
            out.fixed.pop(row, None)
            if reason == "invalid_field_value":
                out.rejected[row] = (
                    reason,
                    f"{error} ({self.domain}'s model encodes it as numeric: send a JSON number, "
                    "or null when missing)",
                )
        return out

    def _numeric_value(self, out: Verdict, row: int, fields, name: str, value: Any) -> None:
        """One numeric field value that is not an int, float or null."""
        if isinstance(value, str):
            text = value.strip()
            if not text:
                self._fix(out, row, fields, name, None)
                out.coerced[name, "missing"] += 1
                return
            try:
                number = float(text)
            except (ValueError, OverflowError):
                number = math.nan
            if math.isfinite(number):
                self._fix(out, row, fields, name, number)
                out.coerced[name, "number"] += 1
                return
        if self.policy == "coerce":
            self._fix(out, row, fields, name, None)
            out.coerced[name, "missing"] += 1
        else:  # one dead letter per event, naming every bad value
            error = f"fields.{name}: {_show(value)} is not a number"
            if row in out.rejected:
                error = f"{out.rejected[row][1]}; {error}"
            out.rejected[row] = ("invalid_field_value", error)

    @staticmethod
    def _fix(out: Verdict, row: int, fields, name: str, value: Any) -> None:
        fixed = out.fixed.get(row)
        if fixed is None:
            fixed = out.fixed[row] = dict(fields)
        fixed[name] = value

    def _unknown_fields(self, kind: str, names: Sequence[str]) -> str:
        shown = ", ".join(repr(n[:_SHOWN]) for n in names[:_NAMED])
        more = f" and {len(names) - _NAMED} more" if len(names) > _NAMED else ""
        side = "profile" if kind == "profile" else "event"
        return f"fields: {shown}{more} unknown to {self.domain}'s model ({side} fields)"

    def _unknown_kind(self, kind: str) -> str:
        known = sorted(self.kinds)
        return f"kind: {_show(kind)} unknown to {self.domain}'s model (known: {known})"


def _numeric(roles: Iterable[Any]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(r.name for r in roles if r.encoding == "numeric"))


def _show(value: Any) -> str:
    """A value as JSON-ish text, cut to a readable length."""
    text = {True: "true", False: "false"}.get(value) if isinstance(value, bool) else None
    text = text or repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + f"... ({len(text)} characters)"
