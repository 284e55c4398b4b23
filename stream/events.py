"""The wire contract: every message the system reads or writes, as JSON with a schema version.

Messages are keyed by customer id so one customer's events stay ordered on one partition.
``parse_event`` turns raw bytes into a ``CustomerEvent`` or raises ``InvalidEvent`` naming the
field and the reason; consumers turn that into a ``DeadLetter`` and go on.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AllowInfNan,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

__all__ = [
    "SCHEMA_VERSION",
    "CustomerEvent",
    "DeadLetter",
    "EventRef",
    "FieldValue",
    "InvalidEvent",
    "Outcome",
    "ReasonCode",
    "RiskAlert",
    "RiskScore",
    "ShadowScore",
    "dead_letter",
    "parse_event",
    "parse_outcome",
]

SCHEMA_VERSION = 1

Identifier = Annotated[str, StringConstraints(min_length=1, max_length=128, strip_whitespace=True)]
DomainName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,63}$")]
FieldValue = float | int | str | bool | None
# On the wire a float must be finite: NaN/Infinity (which Python's and pydantic's JSON accept)
# would be stored and scored as such. Checked in pydantic-core, not in a Python validator: a
# Python callback per event cost ~30 us on the ingest hot path (benchmarks/hot_path.py).
_WireValue = Annotated[float, AllowInfNan(False)] | int | str | bool | None

_WIRE = ConfigDict(extra="forbid", frozen=True, str_max_length=4096)


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


class _Message(BaseModel):
    model_config = _WIRE

    schema_version: Literal[1] = SCHEMA_VERSION

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=False).encode()


class CustomerEvent(_Message):
    """Something a customer did or that happened to them (statement, payment, contact ...).

    ``kind == "profile"`` carries the customer's static profile in ``fields``.
    """

    event_id: Identifier
    customer_id: Identifier
    event_time: AwareDatetime = Field(description="When it happened; stored in UTC.")
    domain: DomainName
    kind: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    fields: dict[Annotated[str, StringConstraints(min_length=1, max_length=128)], _WireValue] = (
        Field(default_factory=dict, max_length=512)
    )

    _utc = field_validator("event_time")(_to_utc)

    @property
    def key(self) -> bytes:
        return self.customer_id.encode()


class Outcome(_Message):
    """A label for a customer: what happened after ``as_of`` (default, churn, conversion)."""

    customer_id: Identifier
    domain: DomainName
    as_of: AwareDatetime = Field(description="Prediction time the label refers to.")
    observed_at: AwareDatetime = Field(description="When the outcome became known.")
    label: Literal[0, 1]
    value: float | None = Field(None, description="Continuous target (e.g. 90-day spend).")

    _utc = field_validator("as_of", "observed_at")(_to_utc)

    @property
    def key(self) -> bytes:
        return self.customer_id.encode()


class EventRef(BaseModel):
    """One event named in an explanation, with its attention weight."""

    model_config = _WIRE

    event_id: str
    event_time: datetime
    kind: str
    weight: float


class ReasonCode(BaseModel):
    """One input that moved a score: a field's value, where it came from, its contribution.

    ``contribution`` is in probability units (integrated gradients against a typical customer
    with the same history, ``model/attribution.py``); ``text`` reads e.g.
    ``pay_status = 2, statement 2005-09-30: +0.21``.
    """

    model_config = _WIRE

    field: str
    value: str
    source: Literal["event", "profile"]
    event_id: str | None = None
    kind: str | None = None
    event_time: datetime | None = None
    contribution: float
    text: str


class RiskScore(_Message):
    customer_id: Identifier
    domain: DomainName
    event_id: Identifier = Field(description="The event whose arrival triggered this score.")
    event_time: AwareDatetime
    probability: float = Field(ge=0, le=1)
    quantiles: dict[str, float] | None = Field(
        None, description="Continuous-target quantiles keyed 'q10', 'q50', 'q90'."
    )
    model_version: str
    scored_at: AwareDatetime
    top_events: list[EventRef] = Field(default_factory=list)
    reasons: list[ReasonCode] = Field(
        default_factory=list, description="Reason codes, when asked for (alerts always)."
    )
    exposure: float | None = Field(
        None,
        description="The customer's exposure (the domain's exposure field, e.g. a credit limit) "
        "when known: expected loss = probability x exposure.",
    )

    _utc = field_validator("event_time", "scored_at")(_to_utc)

    @property
    def key(self) -> bytes:
        return self.customer_id.encode()


class ShadowScore(_Message):
    """A challenger's score of the same window the champion just scored (shadow or canary
    evaluation): never alerted on, only compared. Published on ``risk.scores.shadow``."""

    customer_id: Identifier
    domain: DomainName
    event_id: Identifier
    event_time: AwareDatetime
    probability: float = Field(ge=0, le=1, description="The challenger's probability.")
    model_version: str = Field(description="The challenger's version.")
    champion_version: str
    champion_probability: float = Field(ge=0, le=1)
    would_alert: bool = Field(
        description="The challenger's probability reaches the alert threshold (cool-down and "
        "re-arming are not replayed for it)."
    )
    scored_at: AwareDatetime
    shadow_us: float = Field(ge=0, description="The challenger's model time per row (batch mean).")
    champion_us: float = Field(ge=0, description="The champion's model time per row (batch mean).")

    _utc = field_validator("event_time", "scored_at")(_to_utc)

    @property
    def key(self) -> bytes:
        return self.customer_id.encode()


class RiskAlert(_Message):
    alert_id: Identifier
    customer_id: Identifier
    domain: DomainName
    risk_type: Literal["default", "churn", "non_conversion", "risk"]
    probability: float = Field(ge=0, le=1)
    threshold: float
    expected_loss: float | None = Field(None, description="probability x exposure, if known.")
    model_version: str
    event_id: Identifier
    raised_at: AwareDatetime
    reason: str = Field(description="Why, in one sentence: the threshold and the top reasons.")
    top_events: list[EventRef] = Field(default_factory=list)
    reasons: list[ReasonCode] = Field(default_factory=list, description="Top reason codes.")
    baseline_probability: float | None = Field(
        None, description="The score of a typical customer with the same history."
    )

    _utc = field_validator("raised_at")(_to_utc)

    @property
    def key(self) -> bytes:
        return self.customer_id.encode()


class DeadLetter(_Message):
    """Rejected input: the original bytes (base64) and why, so nothing is lost silently."""

    # Rejected payloads can be any size (oversized ones above all): no wire string limit here.
    model_config = ConfigDict(str_max_length=None)

    reason: str = Field(description="Short machine-readable cause, e.g. 'invalid_json'.")
    error: str = Field(description="Human-readable detail naming the field and the problem.")
    source_topic: str
    partition: int | None = None
    offset: int | None = None
    key_b64: str | None = None
    value_b64: str = Field(description="The original bytes, or their first part if truncated.")
    value_bytes: int = Field(0, description="Size of the original message in bytes.")
    value_sha256: str = Field("", description="SHA-256 (hex) of the whole original message.")
    truncated: bool = Field(False, description="Whether value_b64 holds only the first part.")
    received_at: AwareDatetime

    def original(self) -> bytes:
        return base64.b64decode(self.value_b64)


class InvalidEvent(ValueError):
    """Raised for input that breaks the contract; ``reason`` is short, ``str()`` is detailed."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(p) for p in item["loc"]) or "<message>"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def _parse(model: type[_Message], raw: bytes | str, max_bytes: int) -> Any:
    size = len(raw.encode() if isinstance(raw, str) else raw)
    if size > max_bytes:
        raise InvalidEvent("oversized", f"message is {size} bytes, limit is {max_bytes}")
    try:
        # orjson, not json: it stops at 1024 levels of nesting with an error where json would
        # recurse until RecursionError (a 30,000-deep document crashed the worker), and it
        # refuses NaN/Infinity, which are not JSON.
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        data = raw.encode(errors="replace") if isinstance(raw, str) else raw
        if b"NaN" in data or b"Infinity" in data or "infinity" in str(exc):
            raise InvalidEvent(
                "non_finite",
                f"NaN or an infinite number ({exc}): JSON has neither; send null when a value "
                "is missing",
            ) from None
        raise InvalidEvent("invalid_json", f"not valid UTF-8 JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidEvent("invalid_json", "top level must be a JSON object")
    version = document.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise InvalidEvent(
            "unsupported_schema", f"schema_version: {version!r} is not supported (expected 1)"
        )
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        infinite = sorted(
            {".".join(str(p) for p in e["loc"][:-1]) for e in exc.errors()
             if e["type"] == "finite_number"}
        )  # fmt: skip
        if infinite:
            raise InvalidEvent(
                "non_finite",
                f"{', '.join(infinite)}: NaN or an infinite number; send null when a value is "
                "missing",
            ) from None
        raise InvalidEvent("invalid_fields", _describe(exc)) from None


def parse_event(raw: bytes | str, max_bytes: int = 64 * 1024) -> CustomerEvent:
    """Validate one inbound message; raises ``InvalidEvent`` naming the field and the reason.

    >>> raw = (b'{"event_id": "e1", "customer_id": "c1", "event_time": "2024-01-01T00:00:00Z",'
    ...        b' "domain": "credit", "kind": "statement", "fields": {"bill": 10}}')
    >>> parse_event(raw).customer_id
    'c1'
    """
    # Fast path for the common, valid message: pydantic's JSON parser validates in one pass
    # (about half the cost on the ingest hot path). Whatever it rejects takes the slow path,
    # which names the reason exactly as before.
    if isinstance(raw, bytes) and len(raw) <= max_bytes:
        try:
            return CustomerEvent.model_validate_json(raw)
        except ValueError:  # ValidationError, or pydantic-core's own limits
            pass
    return _parse(CustomerEvent, raw, max_bytes)


def parse_outcome(raw: bytes | str, max_bytes: int = 64 * 1024) -> Outcome:
    """Validate one outcome message; raises ``InvalidEvent`` like ``parse_event``."""
    return _parse(Outcome, raw, max_bytes)


# A dead letter must always fit the broker (message.max.bytes, 1 MiB by default): the original
# is kept whole up to this size and truncated beyond it (base64 adds a third), with its size
# and hash; errors are capped too (a validation error can quote much of a large message).
MAX_DEAD_LETTER_ORIGINAL = 256 * 1024
MAX_DEAD_LETTER_ERROR = 2000


def dead_letter(
    value: bytes | None,
    error: InvalidEvent | str,
    source_topic: str,
    *,
    key: bytes | None = None,
    partition: int | None = None,
    offset: int | None = None,
    max_original: int = MAX_DEAD_LETTER_ORIGINAL,
) -> DeadLetter:
    """Wrap rejected input so that it can be inspected and replayed later.

    >>> letter = dead_letter(b"x" * 10, "too long", "t", max_original=4)
    >>> letter.original(), letter.value_bytes, letter.truncated
    (b'xxxx', 10, True)
    """
    reason = error.reason if isinstance(error, InvalidEvent) else "rejected"
    value = value or b""
    detail = str(error)
    if len(detail) > MAX_DEAD_LETTER_ERROR:
        detail = detail[:MAX_DEAD_LETTER_ERROR] + f"... ({len(detail)} characters)"
    return DeadLetter(
        reason=reason,
        error=detail,
        source_topic=source_topic,
        partition=partition,
        offset=offset,
        key_b64=base64.b64encode(key[:1024]).decode() if key is not None else None,
        value_b64=base64.b64encode(value[:max_original]).decode(),
        value_bytes=len(value),
        value_sha256=hashlib.sha256(value).hexdigest(),
        truncated=len(value) > max_original,
        received_at=datetime.now(UTC),
    )
