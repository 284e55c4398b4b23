"""A domain's trial in the pointer's journal: start, replace, end, its log, what is refused."""

from datetime import UTC, datetime

import pytest

from crmrisk.lifecycle import ModelPointer

pytestmark = pytest.mark.integration


def test_trial__start_replace_end_and_its_history(pointer, tmp_path):
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    pointer.set("credit", "v0001", "initial", now=t0)
    assert pointer.trial("credit") is None
    shadow = pointer.start_trial("credit", "shadow", "v0002", "compare", percent=50, now=t0)
    assert (shadow.mode, shadow.version, shadow.percent) == ("shadow", "v0002", 0.0)
    canary = pointer.start_trial("credit", "canary", "v0003", "try", percent=5, now=t0)
    # the journal is the truth: a fresh reader of the same folder sees the running trial
    again = ModelPointer(pointer._client, "other", 3, tmp_path / "live")
    assert again.trial("credit") == canary
    assert pointer.end_trial("credit", "rolled_back", "worse", version="v0002") is None
    end = pointer.end_trial("credit", "rolled_back", "AUC 0.70 below 0.78", now=t0)
    assert (end.trial, end.outcome, end.reason) == (canary, "rolled_back", "AUC 0.70 below 0.78")
    assert pointer.trial("credit") is None and pointer.current("credit") == "v0001"
    assert pointer.end_trial("credit", "stopped", "again") is None
    log = [(e["event"], e["version"], e.get("outcome")) for e in pointer.trials("credit")]
    assert log == [
        ("start", "v0002", None),
        ("end", "v0002", "stopped"),  # replaced by the canary
        ("start", "v0003", None),
        ("end", "v0003", "rolled_back"),
    ]


def test_trial__refuses_the_live_version_a_bad_mode_or_share(pointer):
    pointer.set("credit", "v0001", "initial")
    with pytest.raises(ValueError, match="already live"):
        pointer.start_trial("credit", "shadow", "v0001", "x")
    with pytest.raises(ValueError, match="mode"):
        pointer.start_trial("credit", "mirror", "v0002", "x")
    for percent in (0, 100, -1):
        with pytest.raises(ValueError, match="percent"):
            pointer.start_trial("credit", "canary", "v0002", "x", percent=percent)
    assert pointer.trial("credit") is None
