"""The model pointer: journal on disk (the truth) + copy in real Redis; moves, compare-and-set,
history, isolation, and surviving a Redis that lost everything or does not answer."""

from datetime import UTC, datetime, timedelta

import pytest
import redis

from crmrisk.lifecycle import ANY, ModelPointer, PointerConflict

pytestmark = pytest.mark.integration


def _cached(client, prefix: str, domain: str = "credit") -> bytes | None:
    return client.hget(f"{prefix.rstrip(':')}:model:{{{domain}}}:current", "version")


def test_current__none_before_first_set(pointer):
    assert pointer.current("credit") is None
    assert pointer.previous("credit") is None
    assert pointer.history("credit") == []


def test_set__moves_pointer_and_records_history(pointer):
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    first = pointer.set("credit", "v0001", "initial", expected=None, now=t0)
    second = pointer.set("credit", "v0002", "promoted", expected="v0001", now=t0 + timedelta(1))
    assert (first.previous, second.previous) == (None, "v0001")
    assert pointer.current("credit") == "v0002"
    assert pointer.previous("credit") == "v0001"
    history = pointer.history("credit")
    assert [(c.version, c.previous, c.reason) for c in history] == [
        ("v0002", "v0001", "promoted"),
        ("v0001", None, "initial"),
    ]
    assert history[0].changed_at == t0 + timedelta(1)


def test_set__rejects_stale_expected_version_and_writes_nothing(pointer):
    pointer.set("credit", "v0001", "initial", expected=None)
    pointer.set("credit", "v0003", "rollback by operator")
    with pytest.raises(PointerConflict) as info:
        pointer.set("credit", "v0002", "promoted", expected="v0001")
    assert info.value.actual == "v0003"
    assert pointer.current("credit") == "v0003"
    assert len(pointer.history("credit")) == 2


def test_set__expected_none_refuses_when_a_version_exists(pointer):
    pointer.set("credit", "v0001", "initial", expected=None)
    with pytest.raises(PointerConflict):
        pointer.set("credit", "v0009", "second initial", expected=None)


def test_set__any_skips_the_guard(pointer):
    pointer.set("credit", "v0001", "initial", expected=ANY)
    pointer.set("credit", "v0002", "forced", expected=ANY)
    assert pointer.current("credit") == "v0002"


def test_history__journal_keeps_all_newest_first_redis_copy_is_capped(
    pointer, redis_client, redis_prefix
):
    for n in range(1, 6):
        pointer.set("credit", f"v{n:04d}", f"step {n}")
    assert [c.version for c in pointer.history("credit")] == [f"v{n:04d}" for n in range(5, 0, -1)]
    assert [c.version for c in pointer.history("credit", limit=1)] == ["v0005"]
    assert redis_client.llen(f"{redis_prefix.rstrip(':')}:model:{{credit}}:history") == 3
    assert _cached(redis_client, redis_prefix) == b"v0005"


def test_current__survives_redis_losing_everything_and_repairs_the_copy(
    pointer, redis_client, redis_prefix
):
    pointer.set("credit", "v0001", "initial", expected=None)
    pointer.set("credit", "v0002", "promoted", expected="v0001")
    for key in redis_client.scan_iter(match=f"{redis_prefix}*"):
        redis_client.delete(key)  # what a restarted Redis without persistence has
    assert pointer.current("credit") == "v0002"
    assert pointer.previous("credit") == "v0001"
    assert _cached(redis_client, redis_prefix) is None
    assert pointer.repair_cache("credit") is True
    assert _cached(redis_client, redis_prefix) == b"v0002"
    assert pointer.repair_cache("credit") is False  # already in step: nothing written


def test_set__works_while_redis_does_not_answer(tmp_path, redis_prefix):
    dead = redis.Redis(port=1, socket_connect_timeout=0.2)  # nothing listens on port 1
    pointer = ModelPointer(dead, redis_prefix.rstrip(":"), 3, tmp_path / "live")
    pointer.set("credit", "v0001", "initial", expected=None)
    with pytest.raises(PointerConflict):
        pointer.set("credit", "v0002", "stale", expected="v0009")
    assert pointer.current("credit") == "v0001"
    assert pointer.repair_cache("credit") is False


def test_a_pointer_kept_only_in_redis_is_migrated_to_the_journal(
    redis_client, redis_prefix, tmp_path
):
    prefix = redis_prefix.rstrip(":")
    redis_client.hset(f"{prefix}:model:credit:current", mapping={
        "version": "v0004", "previous": "v0003", "changed_at": "2026-01-01T00:00:00+00:00",
        "reason": "old deployment"})  # fmt: skip
    redis_client.lpush(
        f"{prefix}:model:credit:history",
        '{"version": "v0004", "previous": '
        '"v0003", "changed_at": "2026-01-01T00:00:00+00:00", "reason": "old"}',
    )
    pointer = ModelPointer(redis_client, prefix, 3, tmp_path / "live")
    assert pointer.current("credit") == "v0004"
    assert (tmp_path / "live" / "credit.json").exists()
    redis_client.delete(f"{prefix}:model:credit:current")
    assert pointer.current("credit") == "v0004"  # from the journal now
    assert [c.version for c in pointer.history("credit")] == ["v0004"]


def test_domains__are_independent(pointer):
    pointer.set("credit", "v0001", "initial")
    pointer.set("telco", "v0007", "initial")
    assert pointer.current("credit") == "v0001"
    assert pointer.current("telco") == "v0007"


def test_set__rejects_empty_version(pointer):
    with pytest.raises(ValueError):
        pointer.set("credit", "", "nothing")
