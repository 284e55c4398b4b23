"""Duplicates, out-of-order events and poison messages, with the stream still flowing."""

import asyncio
import base64
import hashlib
import json
from collections import Counter

import pytest
import redis

from crmrisk.state import CustomerSequenceStore
from crmrisk.stream.events import DeadLetter, RiskScore
from crmrisk.stream.kafka_producer import BatchProducer
from crmrisk.stream.metrics import WorkerMetrics

from .conftest import WorkerThread, read_topic

pytestmark = pytest.mark.integration


def _event(event_id, customer, month, kind="statement", domain="credit", **fields):
    fields = fields or {
        "pay_status": 0,
        "bill_amt": 1000.0 * month,
        "pay_amt": 500.0,
        "bill_to_limit": 0.1,
    }
    return {
        "event_id": event_id,
        "customer_id": customer,
        "event_time": f"2005-{month:02d}-28T00:00:00Z",
        "domain": domain,
        "kind": kind,
        "fields": fields,
    }


PROFILE = {"LIMIT_BAL": 50000, "SEX": 2, "EDUCATION": 2, "MARRIAGE": 1, "AGE": 30}


def _messages():
    """(key, value, expected DLQ reason or None) in publishing order."""

    def ok(doc):
        return doc["customer_id"].encode(), json.dumps(doc).encode(), None

    huge = _event("big", "c1", 5)
    huge["fields"] = {"note": "x" * 3000, **{f"f{i}": "y" * 3000 for i in range(25)}}
    return [
        ok(_event("c1-p", "c1", 1, kind="profile", **PROFILE)),
        ok(_event("c1-e1", "c1", 4)),
        ok(_event("c1-e3", "c1", 6)),
        ok(_event("c1-e2", "c1", 5)),  # late: placed between e1 and e3
        ok(_event("c1-e1", "c1", 4)),  # duplicate: stored once, not scored again
        (b"c1", b"{not json", "invalid_json"),
        (
            b"c1",
            json.dumps(_event("c1-x", "c1", 7) | {"event_time": "yesterday"}).encode(),
            "invalid_fields",
        ),
        (
            b"c1",
            json.dumps(
                {k: v for k, v in _event("c1-y", "c1", 7).items() if k != "customer_id"}
            ).encode(),
            "invalid_fields",
        ),
        (b"c1", json.dumps(_event("c1-z", "c1", 7, nested={"a": 1})).encode(), "invalid_fields"),
        (b"c1", json.dumps(huge).encode(), "oversized"),
        (b"c1", json.dumps(_event("c1-m", "c1", 7, domain="martian")).encode(), "unknown_domain"),
        (b"c9", json.dumps(_event("c1-k", "c1", 7)).encode(), "key_mismatch"),
        (
            b"c1",
            json.dumps(_event("c1-v", "c1", 7) | {"schema_version": 2}).encode(),
            "unsupported_schema",
        ),
        # Poison that crashed the worker before (issue 10), each forever on the same offset:
        # a 900 KB event (under Kafka's limit; its dead letter must still fit the broker) ...
        (b"c1", json.dumps(_event("c1-900k", "c1", 7, note="x" * 900_000)).encode(), "oversized"),
        # ... a document nested 30,000 levels deep (RecursionError in json.loads) ...
        (b"c1", b'{"event_id": ' + b"[" * 30_000 + b"]" * 30_000 + b"}", "invalid_json"),
        # ... an event of the year 2999 (would sort to the end of the window for good) ...
        (
            b"c1",
            json.dumps(
                _event("c1-2999", "c1", 7) | {"event_time": "2999-01-01T00:00:00Z"}
            ).encode(),
            "future_event",
        ),
        # ... and a NaN exposure (was stored as nan).
        (
            b"c1",
            json.dumps(_event("c1-nan", "c1", 1, kind="profile", **PROFILE))
            .replace('"LIMIT_BAL": 50000', '"LIMIT_BAL": NaN')
            .encode(),
            "non_finite",
        ),
        # The field contract (issue 22): values of the wrong type for the credit model ...
        (
            b"c1",
            json.dumps(
                _event("c1-abc", "c1", 7, pay_status="??", bill_amt="abc", pay_amt=1.0)
            ).encode(),
            "invalid_field_value",
        ),
        (
            b"c1",
            json.dumps(
                _event("c1-bool", "c1", 7, pay_status=0, bill_amt=True, pay_amt=False)
            ).encode(),
            "invalid_field_value",
        ),
        (
            b"c1",
            json.dumps(
                _event("c1-age", "c1", 1, kind="profile", **PROFILE | {"AGE": "old"})
            ).encode(),
            "invalid_field_value",
        ),
        # ... and an epoch beyond the year 9999 (epochs are s up to 2e10, ms beyond).
        (
            b"c1",
            json.dumps(_event("c1-epoch", "c1", 7) | {"event_time": 10**16}).encode(),
            "invalid_fields",
        ),
        ok(_event("c2-p", "c2", 1, kind="profile", **PROFILE)),
        ok(_event("c2-e1", "c2", 4)),
        *_accepted(ok),
    ]


def _accepted(ok):
    """Leniencies the contract accepts, visibly (counters), under the default policies."""
    fields = {"pay_status": 0, "bill_amt": 100.0, "pay_amt": 50.0, "bill_to_limit": 0.1}
    return [
        ok(_event("c3-p", "c3", 1, kind="profile", **PROFILE)),
        ok(_event("c3-txt", "c3", 4, **fields | {"bill_amt": "12.5"})),  # coerced: a number
        ok(_event("c3-kind", "c3", 5, kind="martian")),  # an unknown kind: counted
        ok(_event("c3-wide", "c3", 6, **fields | {f"x{i}": i for i in range(500)})),  # counted
        ok(_event("c3-s", "c3", 7) | {"event_time": 1122768000}),  # 2005-07-31, epoch s
        ok(_event("c3-ms", "c3", 8) | {"event_time": 1124064000000}),  # 2005-08-15, epoch ms
    ]


C3 = {"c3-txt": 1, "c3-kind": 1, "c3-wide": 1, "c3-s": 1, "c3-ms": 1}


async def _publish(settings, messages):
    k = settings.kafka
    producer = BatchProducer(k.client_config(), "it-bad-input")
    await producer.start()
    try:
        for key, value, _ in messages:  # one by one: keep the order within the partition
            await producer.send_many(k.topics.events, [(key, value)])
            await producer.flush()
    finally:
        await producer.stop()


def test_bad_input__dead_lettered_with_reason_and_bytes_while_good_events_flow(
    stream_settings, models_for, redis_client
):
    messages = _messages()
    poison = [(v, reason) for _, v, reason in messages if reason]
    asyncio.run(_publish(stream_settings, messages))
    bootstrap, topics = stream_settings.kafka.bootstrap_servers, stream_settings.kafka.topics
    metrics = WorkerMetrics()
    with WorkerThread(stream_settings, models_for(stream_settings), metrics=metrics):
        scores = read_topic(bootstrap, topics.scores, lambda got: len(got) >= 9, timeout_s=60)
        letters = read_topic(
            bootstrap, topics.dead_letters, lambda got: len(got) >= len(poison), timeout_s=30
        )

    scored = Counter(RiskScore.model_validate_json(r.value).event_id for r in scores)
    assert scored == Counter({"c1-e1": 1, "c1-e3": 1, "c1-e2": 1, "c2-e1": 1, **C3})
    sample = metrics.registry.get_sample_value
    coerced = {"domain": "credit", "field": "bill_amt", "to": "number"}
    assert sample("crmrisk_coerced_fields_total", coerced) == 1.0
    assert sample("crmrisk_unknown_kinds_total", {"domain": "credit", "kind": "martian"}) == 1.0
    assert sample("crmrisk_unknown_fields_total", {"domain": "credit", "field": "x7"}) == 1.0
    assert sample("crmrisk_unknown_fields_total", {"domain": "credit", "field": "_other"}) == 400

    dead = [DeadLetter.model_validate_json(r.value) for r in letters]
    assert sorted((d.value_sha256, d.reason) for d in dead) == sorted(
        (hashlib.sha256(v).hexdigest(), reason) for v, reason in poison
    )  # one dead letter per poison message, with its reason
    kept = {d.value_sha256: d for d in dead}
    for value, _ in poison:
        letter = kept[hashlib.sha256(value).hexdigest()]
        assert letter.value_bytes == len(value)
        if letter.truncated:  # the 900 KB one: its head, size and hash
            assert len(value) > 256 * 1024 and value.startswith(letter.original())
        else:
            assert letter.original() == value
    assert all(d.source_topic == topics.events and d.offset is not None for d in dead)
    assert all(d.error for d in dead)
    wrong = sorted(d.error for d in dead if d.reason == "invalid_field_value")
    assert wrong[0].startswith("fields.AGE: 'old' is not a number")
    assert wrong[1].startswith("fields.bill_amt: true is not a number; fields.pay_amt: false")
    assert wrong[2].startswith("fields.pay_status: '??' is not a number; fields.bill_amt: 'abc'")
    assert all("credit's model encodes it as numeric" in e for e in wrong)
    mismatch = next(d for d in dead if d.reason == "key_mismatch")
    assert base64.b64decode(mismatch.key_b64) == b"c9"

    r = stream_settings.redis
    store = CustomerSequenceStore(redis.Redis.from_url(r.url), r.key_prefix)
    c1 = store.read("c1", "credit")
    assert c1.event_ids == ["c1-e1", "c1-e2", "c1-e3"]
    assert c1.profile is not None and c1.exposure == 50000.0


def test_bad_values__under_the_coerce_policy_are_scored_as_missing_and_counted(
    stream_settings, models_for
):
    settings = stream_settings.model_copy(
        update={"scoring": stream_settings.scoring.model_copy(update={"field_policy": "coerce"})}
    )
    fields = {"pay_status": "??", "bill_amt": "abc", "pay_amt": True, "bill_to_limit": 0.1}
    messages = [
        (b"c1", json.dumps(_event("c1-p", "c1", 1, kind="profile", **PROFILE)).encode(), None),
        (b"c1", json.dumps(_event("c1-bad", "c1", 4, **fields)).encode(), None),
    ]
    asyncio.run(_publish(settings, messages))
    k = settings.kafka
    metrics = WorkerMetrics()
    with WorkerThread(settings, models_for(settings), metrics=metrics):
        scores = read_topic(k.bootstrap_servers, k.topics.scores, lambda got: len(got) >= 1, 60)
    assert [RiskScore.model_validate_json(r.value).event_id for r in scores] == ["c1-bad"]
    assert read_topic(k.bootstrap_servers, k.topics.dead_letters, bool, 1, 0) == []
    for name in ("pay_status", "bill_amt", "pay_amt"):
        labels = {"domain": "credit", "field": name, "to": "missing"}
        assert metrics.registry.get_sample_value("crmrisk_coerced_fields_total", labels) == 1.0


def test_bad_requests__the_inference_worker_dead_letters_them_and_scores_the_rest(
    stream_settings, models_for
):
    """``--handoff topic``: malformed score requests, unserved domains and poison windows on
    risk.score-requests become dead letters; the worker neither crashes nor stops."""
    import dataclasses

    import numpy as np

    from crmrisk.stream.requests import ScoreRequest

    messages = [m for m in _messages() if m[2] is None and m[0] != b"c3"]
    asyncio.run(_publish(stream_settings, messages))
    k = stream_settings.kafka
    models = models_for(stream_settings)
    with WorkerThread(stream_settings, models, "ingest", handoff="topic"):
        handed = read_topic(k.bootstrap_servers, k.topics.score_requests, lambda g: len(g) >= 4, 60)
    good = [r.value for r in handed]
    request = ScoreRequest.from_bytes(good[0])
    martian = dataclasses.replace(request, domain="martian").to_bytes()
    nan_window = request.sequence.events.copy()
    nan_window[0, 0] = np.nan
    sequence = dataclasses.replace(request.sequence, events=nan_window)
    nan_request = dataclasses.replace(request, sequence=sequence).to_bytes()
    poison = [
        (b"garbage", "invalid_request"),
        (b'{"customer_id": ' + b"[" * 30_000 + b"\n", "invalid_request"),
        (martian, "unknown_domain"),
        (nan_request, "non_finite"),
    ]

    async def publish() -> None:
        producer = BatchProducer(k.client_config(), "it-bad-requests")
        await producer.start()
        try:
            for value, _ in poison:
                await producer.send_many(k.topics.score_requests, [(b"c1", value)])
                await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(publish())
    with WorkerThread(stream_settings, models, "infer"):
        scores = read_topic(k.bootstrap_servers, k.topics.scores, lambda g: len(g) >= 4, 60)
        letters = read_topic(
            k.bootstrap_servers, k.topics.dead_letters, lambda g: len(g) >= len(poison), 30
        )
    assert len({RiskScore.model_validate_json(r.value).event_id for r in scores}) == 4
    dead = [DeadLetter.model_validate_json(r.value) for r in letters]
    assert sorted((d.original(), d.reason) for d in dead) == sorted(poison)
