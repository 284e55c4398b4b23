"""Ingestor against real Redis: what is stored, scored and dead-lettered (no broker needed)."""

import json
from collections import namedtuple

import numpy as np
import pytest

from state import CustomerSequenceStore
from stream.ingest import Ingestor

pytestmark = pytest.mark.integration

Record = namedtuple("Record", "topic partition offset key value timestamp")


class _Encoder:
    """Two numbers per event (kind flag, amount), one per profile: enough to see placement."""

    def encode_event(self, kind, fields):
        return np.array([kind == "bill", float(fields["amount"])], dtype=np.float32)

    def encode_profile(self, fields):
        return np.array([float(fields["limit"])], dtype=np.float32)


def _raw(event_id, customer="c1", day=1, kind="bill", **fields):
    return json.dumps(
        {
            "event_id": event_id,
            "customer_id": customer,
            "event_time": f"2024-01-{day:02d}T00:00:00Z",
            "domain": "credit",
            "kind": kind,
            "fields": fields or {"amount": day},
        }
    ).encode()


@pytest.fixture
def ingestor(redis_client, redis_prefix):
    store = CustomerSequenceStore(redis_client, redis_prefix.rstrip(":"), window=4, ttl_s=60)
    return Ingestor(store, {"credit": _Encoder()}, 4096, {"credit": "limit"})


def _records(values):
    return [Record("events", 0, i, k, v, 1000 + i) for i, (k, v) in enumerate(values)]


def test_ingest__stores_in_time_order_and_asks_a_score_per_new_event(ingestor):
    result = ingestor.ingest(
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
    ingestor.ingest(records)
    again = ingestor.ingest(records)
    assert (again.applied, again.redelivered) == (0, 2)
    assert [len(r.sequence) for r in again.requests] == [2, 2]


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
    result = ingestor.ingest(_records([(key, value), (b"c1", _raw("ok", day=3))]))
    assert [d.reason for d in result.dead_letters] == [reason]
    letter = result.dead_letters[0]
    assert letter.original() == (value or b"")
    assert (letter.partition, letter.offset, letter.source_topic) == (0, 0, "events")
    assert [r.event_id for r in result.requests] == ["ok"]
