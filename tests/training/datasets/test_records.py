"""CustomerRecord helpers: the profile as a contract event, split relabelling, summaries."""

from __future__ import annotations

from datetime import UTC, datetime

from crmrisk.model.features import FeatureSpec
from crmrisk.stream.events import parse_event
from crmrisk.training.datasets.records import CustomerRecord, DomainDataset, group_by_split

AS_OF = datetime(2024, 3, 1, tzinfo=UTC)


def _record(cid: str, label: int) -> CustomerRecord:
    return CustomerRecord(cid, {"plan": "pro", "age": 41}, [], label, None, "train", AS_OF)


def test_profile_event__is_a_valid_profile_event_at_as_of():
    event = _record("c1", 0).profile_event("shop")
    parsed = parse_event(event.to_bytes())
    assert parsed.kind == "profile" and parsed.event_time == AS_OF
    assert parsed.fields == {"plan": "pro", "age": 41} and parsed.customer_id == "c1"


def test_group_by_split__relabels_and_summary_counts():
    records = [_record(f"c{i}", i % 2) for i in range(6)]
    groups = group_by_split(records, ["train", "train", "val", "test", "test", "train"])
    assert [r.split for r in groups["test"]] == ["test", "test"]
    assert records[3].split == "train"  # originals untouched
    data = DomainDataset("shop", FeatureSpec("shop", (), ()), **groups)
    summary = data.summary()
    assert summary["train"]["customers"] == 3 and summary["test"]["positive_rate"] == 0.5
