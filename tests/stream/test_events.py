"""The wire contract: valid messages round-trip, invalid ones name the field and the reason."""

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from crmrisk.stream.events import (
    CustomerEvent,
    InvalidEvent,
    Outcome,
    dead_letter,
    parse_event,
    parse_outcome,
)


def _event(**overrides) -> dict:
    document = {
        "event_id": "e-1",
        "customer_id": "c-42",
        "event_time": "2005-04-30T00:00:00+08:00",
        "domain": "credit",
        "kind": "statement",
        "fields": {"bill_amt": 1200.5, "pay_status": -1, "note": "ok", "flag": True, "gap": None},
    }
    document.update(overrides)
    return document


def test_round_trip_keeps_every_field_and_normalises_time_to_utc():
    event = parse_event(json.dumps(_event()).encode())
    assert event.event_time == datetime(2005, 4, 29, 16, tzinfo=UTC)
    assert event.event_time.utcoffset() == timedelta(0)
    again = parse_event(event.to_bytes())
    assert again == event
    assert again.fields["note"] == "ok" and again.fields["gap"] is None
    assert event.key == b"c-42"


@pytest.mark.parametrize(
    ("raw", "reason", "mentions"),
    [
        (b"{not json", "invalid_json", "JSON"),
        (b"[1, 2]", "invalid_json", "object"),
        (b"\xff\xfe", "invalid_json", "UTF-8"),
        (
            json.dumps(_event(event_time="2005-04-30T00:00:00")).encode(),
            "invalid_fields",
            "event_time",
        ),
        (json.dumps(_event(customer_id="")).encode(), "invalid_fields", "customer_id"),
        (json.dumps(_event(domain="Credit Cards")).encode(), "invalid_fields", "domain"),
        (json.dumps(_event(fields={"x": [1, 2]})).encode(), "invalid_fields", "fields.x"),
        (json.dumps(_event(surprise=1)).encode(), "invalid_fields", "surprise"),
        (json.dumps(_event(schema_version=2)).encode(), "unsupported_schema", "schema_version"),
        (
            json.dumps({k: v for k, v in _event().items() if k != "kind"}).encode(),
            "invalid_fields",
            "kind",
        ),
    ],
)
def test_invalid_input_names_the_field_and_reason(raw, reason, mentions):
    with pytest.raises(InvalidEvent) as caught:
        parse_event(raw)
    assert caught.value.reason == reason
    assert mentions in str(caught.value)


def test_oversized_payload_is_rejected_before_parsing():
    raw = json.dumps(_event(fields={"blob": "x" * 3000})).encode()
    with pytest.raises(InvalidEvent) as caught:
        parse_event(raw, max_bytes=1024)
    assert caught.value.reason == "oversized"


def test_dead_letter_keeps_the_original_bytes_and_reason():
    raw = b'{"broken": '
    with pytest.raises(InvalidEvent) as caught:
        parse_event(raw)
    letter = dead_letter(raw, caught.value, "crm.events", key=b"c-1", partition=3, offset=7)
    assert letter.original() == raw
    assert letter.reason == "invalid_json"
    restored = type(letter).model_validate_json(letter.to_bytes())
    assert restored.original() == raw and restored.offset == 7


@pytest.mark.parametrize(
    "raw",
    [
        b'{"event_id": ' + b"[" * 30_000 + b"]" * 30_000 + b"}",  # crashed json.loads before
        b"[" * 30_000,
        json.dumps(_event(fields={"x": {"y": [[[[1]]]]}})).encode(),
    ],
)
def test_deeply_nested_input_is_invalid_not_a_crash(raw):
    with pytest.raises(InvalidEvent) as caught:
        parse_event(raw, max_bytes=1024 * 1024)
    assert caught.value.reason in {"invalid_json", "invalid_fields"}


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_refused_by_field(token):
    raw = json.dumps(_event(fields={"LIMIT_BAL": 0})).replace(
        '"LIMIT_BAL": 0', f'"LIMIT_BAL": {token}'
    )
    with pytest.raises(InvalidEvent) as caught:
        parse_event(raw.encode())
    assert caught.value.reason == "non_finite"


def test_non_finite_numbers_built_in_python_are_refused_by_field_name():
    with pytest.raises(InvalidEvent) as caught:
        parse_event(json.dumps(_event(fields={"LIMIT_BAL": float("nan")})))  # json writes NaN
    assert caught.value.reason == "non_finite"
    with pytest.raises(ValueError, match="LIMIT_BAL"):
        CustomerEvent.model_validate(_event(fields={"LIMIT_BAL": float("inf")}))


def test_dead_letter_of_an_oversized_message_always_fits_the_broker():
    raw = b'{"event_id": "' + b"x" * 900_000 + b'"}'
    with pytest.raises(InvalidEvent) as caught:
        parse_event(raw)
    letter = dead_letter(raw, caught.value, "crm.events", key=b"k" * 5000, offset=1)
    wire = letter.to_bytes()
    assert len(wire) < 1_000_000  # Kafka's default message.max.bytes is 1,048,588
    assert letter.truncated and letter.value_bytes == len(raw)
    assert raw.startswith(letter.original()) and len(letter.original()) == 256 * 1024
    import hashlib

    assert letter.value_sha256 == hashlib.sha256(raw).hexdigest()
    huge_error = dead_letter(b"x", "e" * 100_000, "crm.events")
    assert len(huge_error.error) < 2100


def test_outcome_contract():
    outcome = parse_outcome(
        json.dumps(
            {
                "customer_id": "c-1",
                "domain": "credit",
                "as_of": "2005-09-30T00:00:00Z",
                "observed_at": "2005-10-31T00:00:00Z",
                "label": 1,
            }
        )
    )
    assert isinstance(outcome, Outcome) and outcome.value is None
    with pytest.raises(InvalidEvent, match="label"):
        parse_outcome(outcome.to_bytes().replace(b'"label":1', b'"label":2'))


def test_events_are_immutable():
    event = CustomerEvent(
        event_id="e",
        customer_id="c",
        event_time=datetime(2020, 1, 1, tzinfo=timezone(timedelta(hours=2))),
        domain="telco",
        kind="snapshot",
    )
    with pytest.raises(ValueError):
        event.kind = "other"  # type: ignore[misc]
