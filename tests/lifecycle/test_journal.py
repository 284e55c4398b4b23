"""The pointer's journal on its own (no Redis): durable current entry, full history, restore."""

import json
from datetime import UTC, datetime

import pytest

from crmrisk.lifecycle.journal import PointerChange, PointerError, PointerJournal


def _entry(version: str, previous: str = "") -> dict[str, str]:
    changed_at = datetime(2026, 1, int(version[1:]), tzinfo=UTC).isoformat()
    return {"version": version, "previous": previous, "changed_at": changed_at, "reason": "r"}


def test_record__current_is_the_last_entry_history_keeps_all_newest_first(tmp_path):
    journal = PointerJournal(tmp_path / "live")
    assert journal.current("credit") is None and journal.history("credit") == []
    with journal.locked("credit"):
        journal.record("credit", _entry("v0001"))
        journal.record("credit", _entry("v0002", "v0001"))
    assert journal.current("credit") == _entry("v0002", "v0001")
    assert [(c.version, c.previous) for c in journal.history("credit")] == [
        ("v0002", "v0001"),
        ("v0001", None),
    ]
    assert not list((tmp_path / "live").glob("*.tmp"))  # the temporary file was renamed


def test_restore__writes_a_pointer_kept_elsewhere(tmp_path):
    journal = PointerJournal(tmp_path / "live")
    old = [json.dumps(_entry("v0003")), json.dumps(_entry("v0004", "v0003"))]
    with journal.locked("credit"):
        journal.restore("credit", _entry("v0004", "v0003"), old)
    assert journal.exists("credit")
    assert [c.version for c in journal.history("credit")] == ["v0004", "v0003"]


def test_current__an_unreadable_journal_is_a_pointer_error(tmp_path):
    journal = PointerJournal(tmp_path)
    (tmp_path / "credit.json").write_text("{not json")
    with pytest.raises(PointerError, match="reading the model pointer"):
        journal.current("credit")


def test_pointer_change__from_an_entry():
    change = PointerChange.from_entry("credit", _entry("v0002", "v0001"))
    assert change == PointerChange(
        "credit", "v0002", "v0001", datetime(2026, 1, 2, tzinfo=UTC), "r"
    )
