"""Decode: records -> validated columns -> encoded appends; bad input -> dead letters.

The fast path (msgspec) must accept exactly what the wire contract (pydantic,
``stream.events.parse_event``) accepts and decode it to the same values; everything else takes
the contract's own path, which names the reason. Checked on a corpus of tricky inputs.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from crmrisk.stream.decode import decode_events
from crmrisk.stream.events import DeadLetter, InvalidEvent, RiskScore, parse_event
from crmrisk.stream.field_contract import FieldContract
from crmrisk.stream.transform import event_time_ms
from tests.stream.conftest import (
    Log,
    Record,
    kit,
    pipeline,
    raw_event,
    records,
    run,
)


def _doc(**over) -> dict:
    doc = {"event_id": "e1", "customer_id": "c1", "event_time": "2024-01-01T00:00:00Z",
           "domain": "credit", "kind": "bill", "fields": {"amount": 1}}  # fmt: skip
    doc.update(over)
    return doc


TRICKY = [
    _doc(),
    _doc(event_id=" e1 "),  # the contract strips blanks
    _doc(customer_id="c1\u00e9"),
    _doc(event_time="2024-01-01T02:00:00+02:00"),
    _doc(event_time="2024-01-01T00:00:00.123456789Z"),
    _doc(event_time="2024-01-01T00:00:00"),  # naive: refused
    _doc(event_time="2024-01-01"),
    _doc(event_time=1704067200),  # an epoch number: seconds up to 2e10 ...
    _doc(event_time=1704067200123),  # ... milliseconds beyond
    _doc(event_time=20_000_000_000),
    _doc(event_time=20_000_000_001),
    _doc(event_time=0),
    _doc(event_time=-86400),  # before 1970: the slow path's
    _doc(event_time=1704067200.5),  # a float: the slow path's
    _doc(event_time="1704067200"),  # digits as text: the slow path's (the same rule)
    _doc(event_time=253402300800000),  # after 9999: refused
    _doc(event_time=10**30),
    _doc(event_time=True),
    _doc(event_time="2024-01-01 00:00:00Z"),
    _doc(event_time="2024-01-01t00:00:00z"),
    _doc(fields={"amount": 12345678901234567890123}),
    _doc(fields={"amount": 1.0, "flag": True, "note": None, "code": "x"}),
    _doc(fields={"amount": "12.5", "flag": "true", "n": " 7 ", "blank": " ", "bad": "abc"}),
    _doc(fields={"amount": False, "code": 2.0, "big": -(2**63), "bigger": 2**64}),
    _doc(kind="martian-kind", fields={f"f{i}": i for i in range(500)}),
    _doc(fields={"": 1}),
    _doc(fields={"x" * 129: 1}),
    _doc(fields={"note": "y" * 4097}),
    _doc(kind=""),
    _doc(kind="k" * 65),
    _doc(event_id="e" * 129),
    _doc(event_id="   "),
    _doc(domain="Credit"),
    _doc(domain="mars"),
    _doc(schema_version=2),
    _doc(schema_version=1.0),
    _doc(extra=1),
    _doc(fields=[1, 2]),
    _doc(fields={"a": [1]}),
    _doc(fields={"a": {"b": 1}}),
    _doc(event_id=5),
    _doc(event_id="e\u0000"),
]


def _contract(raw: bytes, key: bytes | None):
    """What the contract says: (event id, customer, time ms, kind, fields) or the reason."""
    try:
        event = parse_event(raw)
    except InvalidEvent as exc:
        return exc.reason
    if event.domain != "credit":
        return "unknown_domain"
    if "\x00" in event.event_id or "\x00" in event.customer_id:
        return "invalid_fields"
    if key is not None and key != event.key:
        return "key_mismatch"
    return (event.event_id, event.customer_id, event_time_ms(event), event.kind, event.fields)


@pytest.mark.parametrize("doc", TRICKY, ids=range(len(TRICKY)))
def test_decode__fast_path_agrees_with_the_contract(doc):
    raw = json.dumps(doc).encode()
    for key in (None, b"c1"):
        d = decode_events([Record("events", 0, 0, key, raw, 0)], {"credit"}, 64 * 1024, None, None)
        want = _contract(raw, key)
        if isinstance(want, str):
            assert [x.reason for x in d.dead_letters] == [want]
            assert len(d) == 0
        else:
            assert d.dead_letters == []
            got = (d.event_ids[0], d.customers[0], int(d.times_ms[0]), d.kinds[0], d.fields[0])
            assert got == want
            assert [type(v) for v in got[4].values()] == [type(v) for v in want[4].values()]


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        (b"c1", b"\xff\xfe", "invalid_json"),
        (b"c1", b"[1, 2]", "invalid_json"),
        (b"c1", None, "invalid_json"),
        (b"c1", raw_event("x", note="y" * 5000), "oversized"),
        (b"c1", raw_event("x").replace(b'"credit"', b'"mars"'), "unknown_domain"),
        (b"c2", raw_event("x"), "key_mismatch"),
        (
            b"c1",
            raw_event("x", amount=666, limit=float("nan")).replace(b"NaN", b"1"),
            "unencodable",
        ),
        (b"c1", raw_event("x", amount="lots"), "invalid_field_value"),
        (b"c1", raw_event("x", amount=True), "invalid_field_value"),
        (b"c1", raw_event("x").replace(b'"event_id": "x"', b'"event_id": 5'), "invalid_fields"),
    ],
)
def test_ingest__bad_input_is_dead_lettered_and_the_batch_goes_on(key, value, reason):
    explode = reason == "unencodable"
    model_kit = kit()
    if explode:  # an encoder with a bug that one value triggers (not a ValueError)
        encode_many = model_kit.encoder.encode_events_many

        def exploding(kinds, fields):
            if any(f.get("amount") == 666 for f in fields):
                raise ZeroDivisionError("unlucky")
            return encode_many(kinds, fields)

        model_kit.encoder.encode_events_many = exploding
    batch = [Record("events", 0, 0, key, value, 1000),
             Record("events", 0, 1, b"c1", raw_event("ok", day=3), 1001)]  # fmt: skip
    p, _, sink = pipeline(Log(), [batch], model_kit=model_kit)
    run(p)
    letters = [DeadLetter.model_validate_json(v) for v in sink.on("dlq")]
    assert [x.reason for x in letters] == [reason]
    assert letters[0].original() == (value or b"")
    assert (letters[0].partition, letters[0].offset, letters[0].source_topic) == (0, 0, "events")
    if explode:
        assert "ZeroDivisionError" in letters[0].error
    assert [RiskScore.model_validate_json(v).event_id for v in sink.on("scores")] == ["ok"]


def test_ingest__poison_records_become_dead_letters_and_good_ones_are_stored():
    now_s = 1_717_200_000.0  # 2024-06-01T00:00:00Z
    future = raw_event("f").replace(b"2024-01-01", b"2999-01-01")
    soon = raw_event("s").replace(b"2024-01-01T00:00:00Z", b"2024-06-01T00:30:00Z")  # +30 min
    nan = raw_event("n").replace(b'"amount": 1', b'"amount": NaN')
    deep = b'{"fields": ' + b"[" * 30_000 + b"]" * 30_000 + b"}"
    values = [raw_event("a", day=1), future, nan, deep, soon, raw_event("b", day=2)]
    p, _, sink = pipeline(Log(), [records(values)], clock=lambda: now_s)
    p.stages.events.max_future_s = 3600
    p.stages.events.max_message_bytes = 128 * 1024
    p.stages._clock = lambda: now_s
    run(p)
    reasons = sorted(DeadLetter.model_validate_json(v).reason for v in sink.on("dlq"))
    assert reasons == ["future_event", "invalid_json", "non_finite"]
    assert p.state.sequence("c1", "credit").event_ids == ["a", "b", "s"]


def _step(values, contract=None):
    p, _, sink = pipeline(Log(), [records(values)])
    if contract is not None:
        p.stages.events.contracts["credit"] = contract(p.stages.events.encoders["credit"])
    run(p)
    letters = [DeadLetter.model_validate_json(v) for v in sink.on("dlq")]
    scored = [RiskScore.model_validate_json(v).event_id for v in sink.on("scores")]
    return p, letters, scored


def test_ingest__strict_field_policy_dead_letters_a_wrong_value_and_scores_the_rest():
    values = [raw_event("a", day=1), raw_event("bad", day=2, amount="abc"),
              raw_event("txt", day=3, amount="12.5"), raw_event("b", day=4)]  # fmt: skip
    p, letters, scored = _step(values)
    assert [(x.reason, x.offset) for x in letters] == [("invalid_field_value", 1)]
    assert letters[0].error.startswith("fields.amount: 'abc' is not a number")
    assert letters[0].original() == values[1]
    assert scored == ["a", "txt", "b"]
    sample = p.metrics.registry.get_sample_value
    labels = {"domain": "credit", "field": "amount", "to": "number"}
    assert sample("crmrisk_coerced_fields_total", labels) == 1.0
    assert sample("crmrisk_dead_letters_total", {"reason": "invalid_field_value"}) == 1.0


def test_ingest__coerce_field_policy_scores_a_wrong_value_as_missing_and_counts_it():
    values = [raw_event("bad", day=2, amount="abc"), raw_event("flag", day=3, amount=True)]
    p, letters, scored = _step(values, lambda e: FieldContract.of(e, "coerce", "count", "limit"))
    assert letters == [] and scored == ["bad", "flag"]
    labels = {"domain": "credit", "field": "amount", "to": "missing"}
    assert p.metrics.registry.get_sample_value("crmrisk_coerced_fields_total", labels) == 2.0
    encoder = p.stages.events.encoders["credit"]
    stored = p.state.sequence("c1", "credit")
    assert stored.event_ids == ["bad", "flag"]
    np.testing.assert_array_equal(stored.events[0], encoder.encode_event("bill", {}))


def test_ingest__unknown_names_and_kinds_are_counted_and_rejected_only_when_asked():
    values = [raw_event("x", day=1, amount=1, note="hi", **{f"f{i}": i for i in range(150)}),
              raw_event("k", day=2, kind="martian")]  # fmt: skip
    p, letters, scored = _step(values)
    assert letters == [] and scored == ["x", "k"]
    sample = p.metrics.registry.get_sample_value
    assert sample("crmrisk_unknown_fields_total", {"domain": "credit", "field": "note"}) == 1.0
    assert sample("crmrisk_unknown_kinds_total", {"domain": "credit", "kind": "martian"}) == 1.0
    # 151 names: the first 100 as themselves, the rest under _other
    names = {
        s.labels["field"]
        for m in p.metrics.registry.collect()
        if m.name == "crmrisk_unknown_fields"
        for s in m.samples
        if s.name.endswith("_total")
    }
    assert len(names) == 101 and "_other" in names
    assert sample("crmrisk_unknown_fields_total", {"domain": "credit", "field": "_other"}) == 51.0

    p, letters, scored = _step(values, lambda e: FieldContract.of(e, "strict", "reject", "limit"))
    assert sorted(x.reason for x in letters) == ["unknown_field", "unknown_kind"] and scored == []
