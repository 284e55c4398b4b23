"""The model pointer against real Redis: moves, compare-and-set, history, isolation."""

from datetime import UTC, datetime, timedelta

import pytest

from state.model_pointer import ANY, ModelPointer, PointerConflict

pytestmark = pytest.mark.integration


@pytest.fixture
def pointer(redis_client, redis_prefix):
    return ModelPointer(redis_client, key_prefix=redis_prefix.rstrip(":"), history_limit=3)


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


def test_history__is_capped_and_newest_first(pointer):
    for n in range(1, 6):
        pointer.set("credit", f"v{n:04d}", f"step {n}")
    assert [c.version for c in pointer.history("credit")] == ["v0005", "v0004", "v0003"]
    assert [c.version for c in pointer.history("credit", limit=1)] == ["v0005"]


def test_domains__are_independent(pointer):
    pointer.set("credit", "v0001", "initial")
    pointer.set("telco", "v0007", "initial")
    assert pointer.current("credit") == "v0001"
    assert pointer.current("telco") == "v0007"


def test_set__rejects_empty_version(pointer):
    with pytest.raises(ValueError):
        pointer.set("credit", "", "nothing")
