"""Reason codes on the wire: a model ``Explanation`` named by event and turned into words.

``model.attribution`` knows window slots and fields; here a slot becomes the stored event it
holds (id, kind, time), and the top reasons become one sentence an analyst can act on.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from crmrisk.model.attribution import Explanation
from crmrisk.state import CustomerSequence
from crmrisk.stream.events import ReasonCode

__all__ = ["reason_codes", "reason_sentence", "reason_text"]


def reason_text(field: str, value: str, where: str, contribution: float) -> str:
    """One reason as a line.

    >>> reason_text("pay_status", "2", "statement 2005-09-30", 0.2113)
    'pay_status = 2, statement 2005-09-30: +0.21'
    >>> reason_text("LIMIT_BAL", "≥ 500,000", "profile", -0.0004)
    'LIMIT_BAL ≥ 500,000, profile: -0.0004'
    """
    return f"{_is(field, value)}, {where}: {_signed(contribution)}"


def _is(field: str, value: str) -> str:
    """``field = value``, or ``field ≥ bound`` for a value clipped to the training range."""
    return f"{field} {value}" if value[:1] in ("≥", "≤") else f"{field} = {value}"


def _signed(x: float) -> str:
    """Two decimals, or two significant digits for small contributions (never '+0.00')."""
    return f"{x:+.2f}" if abs(x) >= 0.005 else f"{x:+.2g}"


def _where(code: ReasonCode) -> str:
    if code.source == "profile" or code.event_time is None:
        return "profile"
    return f"{code.kind} {code.event_time:%Y-%m-%d}"


def reason_codes(explanation: Explanation, sequence: CustomerSequence) -> list[ReasonCode]:
    """The explanation's reasons, each naming the event of its window slot (or the profile)."""
    codes = []
    for r in explanation.reasons:
        if r.position is None:
            where, text_where = {"source": "profile"}, "profile"
        else:
            ms = int(sequence.event_times_ms[r.position])
            when = datetime.fromtimestamp(ms / 1000, tz=UTC)
            kind = sequence.kinds[r.position]
            where = {
                "source": "event",
                "event_id": sequence.event_ids[r.position],
                "kind": kind,
                "event_time": when,
            }
            text_where = f"{kind} {when:%Y-%m-%d}"
        codes.append(
            ReasonCode(
                field=r.field,
                value=r.value,
                contribution=r.contribution,
                text=reason_text(r.field, r.value, text_where, r.contribution),
                **where,
            )
        )
    return codes


def reason_sentence(
    codes: Sequence[ReasonCode], probability: float, baseline: float, top: int = 3
) -> str:
    """A short sentence from the top reasons.

    >>> from stream.events import ReasonCode
    >>> c = [ReasonCode(field="pay_status", value="2", source="event", kind="statement",
    ...                 event_time=datetime(2005, 9, 30, tzinfo=UTC), contribution=0.21, text=""),
    ...      ReasonCode(field="AGE", value="23", source="profile", contribution=-0.02, text="")]
    >>> head, said = reason_sentence(c, 0.734, 0.52).split(": ")
    >>> head
    'p 0.734 vs 0.520 for a typical customer with this history'
    >>> said
    'up by pay_status = 2 (statement 2005-09-30, +0.21); down by AGE = 23 (profile, -0.02).'
    """
    parts = {"up": [], "down": []}
    for code in codes[:top]:
        side = "up" if code.contribution > 0 else "down"
        parts[side].append(
            f"{_is(code.field, code.value)} ({_where(code)}, {_signed(code.contribution)})"
        )
    said = "; ".join(f"{side} by {', '.join(items)}" for side, items in parts.items() if items)
    head = f"p {probability:.3f} vs {baseline:.3f} for a typical customer with this history"
    return f"{head}: {said}." if said else f"{head}."
