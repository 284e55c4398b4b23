"""EventIntake and RequestIntake: what is stored, scored and dead-lettered (no broker needed).

The event intake runs against real Redis and the in-memory twin of the sequence store.
"""

from collections import namedtuple

import numpy as np
import pytest

from state import CustomerSequenceStore
from state.memory import MemorySequenceStore
from stream.intake import EventIntake, RequestIntake
from tests.stream.conftest import raw_event as _raw

pytestmark = pytest.mark.integration

Record = namedtuple("Record", "topic partition offset key value timestamp")


class _Encoder:
    """Two numbers per event (kind flag, amount), one per profile: enough to see placement."""

    def encode_events_many(self, kinds, fields):
        rows = [[k == "bill", float(f["amount"])] for k, f in zip(kinds, fields, strict=True)]
        return np.array(rows, dtype=np.float32).reshape(len(kinds), 2)

    def encode_profiles_many(self, fields):
        return np.array([[float(f["limit"])] for f in fields], dtype=np.float32).reshape(-1, 1)


@pytest.fixture(params=["redis", "memory"])
def ingestor(request, redis_client, redis_prefix):
    if request.param == "memory":
        store = MemorySequenceStore(window=4)
    else:
        store = CustomerSequenceStore(redis_client, redis_prefix.rstrip(":"), window=4, ttl_s=60)
    return EventIntake(store, {"credit": _Encoder()}, 4096, {"credit": "limit"})


def _records(values):
    return [Record("events", 0, i, k, v, 1000 + i) for i, (k, v) in enumerate(values)]


def test_ingest__stores_in_time_order_and_asks_a_score_per_new_event(ingestor):
    result = ingestor.take(
        _records(
            [
                (b"c1", _raw("p", kind="profile", limit=5000)),
                (b"c1", _raw("b", day=2)),
                (b"c1", _raw("a", day=1)),
                (b"c1", _raw("b", day=2)),
            ]
        )
    )
    assert (result.applied, result.duplicates, result.unscored) == (3, 1, 1)
    assert [r.event_id for r in result.requests] == ["b", "a"]
    last = result.requests[-1]
    assert last.sequence.event_ids == ["a", "b"]
    assert last.sequence.exposure == 5000.0
    assert last.produced_ms == 1002


def test_ingest__redelivered_batch_is_rescored_not_restored(ingestor):
    records = _records([(b"c1", _raw("a", day=1)), (b"c1", _raw("b", day=2))])
    first = ingestor.take(records)
    again = ingestor.take(records)
    assert (again.applied, again.redelivered) == (0, 2)
    # Each is re-scored as of itself, exactly as first scored: "a" never sees the later "b".
    assert [r.sequence.event_ids for r in again.requests] == [["a"], ["a", "b"]]
    assert [r.sequence.event_ids for r in first.requests] == [["a"], ["a", "b"]]
    assert [r.sequence.events.tolist() for r in again.requests] == [
        r.sequence.events.tolist() for r in first.requests
    ]


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        (b"c1", b"\xff\xfe", "invalid_json"),
        (b"c1", b"[1, 2]", "invalid_json"),
        (b"c1", None, "invalid_json"),
        (b"c1", _raw("x", note="y" * 5000), "oversized"),
        (b"c1", _raw("x").replace(b'"credit"', b'"mars"'), "unknown_domain"),
        (b"c2", _raw("x"), "key_mismatch"),
        (b"c1", _raw("x", amount="lots"), "unencodable"),
        (b"c1", _raw("x").replace(b'"event_id": "x"', b'"event_id": 5'), "invalid_fields"),
    ],
)
def test_ingest__bad_input_is_dead_lettered_and_the_batch_goes_on(ingestor, key, value, reason):
    result = ingestor.take(_records([(key, value), (b"c1", _raw("ok", day=3))]))
    assert [d.reason for d in result.dead_letters] == [reason]
    letter = result.dead_letters[0]
    assert letter.original() == (value or b"")
    assert (letter.partition, letter.offset, letter.source_topic) == (0, 0, "events")
    assert [r.event_id for r in result.requests] == ["ok"]


def test_take__vectorised_encoding_equals_the_per_event_encoder(redis_client, redis_prefix):
    from model.features import FeatureEncoder, FeatureSpec, FieldRole

    spec = FeatureSpec(
        "credit",
        (FieldRole("amount", "numeric"), FieldRole("channel", "categorical")),
        (FieldRole("limit", "numeric"),),
        min_count=1,
    )
    fields = [{"amount": float(i), "channel": "web" if i % 2 else "app"} for i in range(20)]
    encoder = FeatureEncoder.fit(spec, ["bill"] * 20, fields, [{"limit": 1.0}, {"limit": 9.0}])
    store = MemorySequenceStore(window=8)
    intake = EventIntake(store, {"credit": encoder}, 4096, {})
    values = [(b"c1", _raw("p", kind="profile", limit=3000))]
    values += [(b"c1", _raw(f"e{d}", day=d, amount=d * 7.5, channel="web")) for d in (1, 2, 3)]
    values += [(b"c1", _raw("odd", day=4, amount="n/a", channel=None))]
    result = intake.take(_records(values))
    seq = result.requests[-1].sequence
    expected = [
        encoder.encode_event("bill", {"amount": d * 7.5, "channel": "web"}) for d in (1, 2, 3)
    ]
    expected.append(encoder.encode_event("bill", {"amount": "n/a", "channel": None}))
    np.testing.assert_array_equal(seq.events, np.stack(expected))
    np.testing.assert_array_equal(seq.profile, encoder.encode_profile({"limit": 3000}))


def test_request_intake__decodes_requests_and_dead_letters_the_rest(ingestor):
    stored = ingestor.take(_records([(b"c1", _raw("a", day=1)), (b"c1", _raw("b", day=2))]))
    good = stored.requests[-1].to_bytes()
    other = good.replace(b'"domain":"credit"', b'"domain":"mars"')
    records = _records([(b"c1", good), (b"c1", b"not a request"), (b"c1", other), (b"c1", None)])
    result = RequestIntake(["credit"]).take(records)
    assert [r.event_id for r in result.requests] == ["b"]
    assert result.requests[0].sequence.event_ids == ["a", "b"]
    assert [d.reason for d in result.dead_letters] == [
        "invalid_request",
        "unknown_domain",
        "invalid_request",
    ]


def test_take__same_event_id_other_content_is_a_dead_letter_an_exact_duplicate_is_not(ingestor):
    first = ingestor.take(_records([(b"c1", _raw("a", day=1, amount=5))]))
    assert [r.event_id for r in first.requests] == ["a"]
    again = ingestor.take(
        [
            Record("events", 0, 10, b"c1", _raw("a", day=1, amount=5), 2000),  # exact duplicate
            Record("events", 0, 11, b"c1", _raw("a", day=1, amount=7), 2001),  # other content
            Record("events", 0, 12, b"c1", _raw("b", day=2), 2002),
        ]
    )
    assert again.duplicates == 1
    assert [d.reason for d in again.dead_letters] == ["event_id_conflict"]
    letter = again.dead_letters[0]
    assert letter.offset == 11 and letter.original() == _raw("a", day=1, amount=7)
    stored, new = letter.error.split("stored content hash ")[1].split(", this one ")
    assert len(stored) == 16 and new.startswith(tuple("0123456789abcdef")) and stored != new[:16]
    assert [r.event_id for r in again.requests] == ["b"]
    assert again.requests[0].sequence.event_ids == ["a", "b"]  # stored once, unchanged


def test_ingest__poison_records_become_dead_letters_with_reasons_and_good_ones_are_stored(
    redis_client, redis_prefix
):
    class Exploding(_Encoder):
        """An encoder with a bug that only one value triggers (not a ValueError)."""

        def encode_events_many(self, kinds, fields):
            if any(f.get("amount") == 13 for f in fields):
                raise ZeroDivisionError("unlucky")
            return super().encode_events_many(kinds, fields)

    store = CustomerSequenceStore(redis_client, redis_prefix.rstrip(":"), window=4, ttl_s=60)
    now_s = 1_717_200_000.0  # 2024-06-01T00:00:00Z
    intake = EventIntake(store, {"credit": Exploding()}, 128 * 1024, {}, max_future_s=3600,
                         clock=lambda: now_s)  # fmt: skip
    future = _raw("f").replace(b"2024-01-01", b"2999-01-01")
    soon = _raw("s").replace(b"2024-01-01T00:00:00Z", b"2024-06-01T00:30:00Z")  # +30 min
    nan = _raw("n").replace(b'"amount": 1', b'"amount": NaN')
    deep = b'{"fields": ' + b"[" * 30_000 + b"]" * 30_000 + b"}"
    result = intake.take(
        _records(
            [
                (b"c1", _raw("a", day=1)),
                (b"c1", future),
                (b"c1", nan),
                (b"c1", deep),
                (b"c1", _raw("x", amount=13)),
                (b"c1", soon),
                (b"c1", _raw("b", day=2)),
            ]
        )
    )
    reasons = sorted(d.reason for d in result.dead_letters)
    assert reasons == ["future_event", "invalid_json", "non_finite", "unencodable"], [
        (d.reason, d.error[:80]) for d in result.dead_letters
    ]
    assert "ZeroDivisionError" in next(
        d.error for d in result.dead_letters if d.reason == "unencodable"
    )
    assert store.read("c1", "credit").event_ids == ["a", "b", "s"]
