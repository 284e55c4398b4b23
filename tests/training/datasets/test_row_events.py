"""Wide rows: one row per customer, several events per row (GenericSpec.row_events)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import yaml

from crmrisk.training.datasets import DataError, SpecError, load_domain, parse_spec, telco
from crmrisk.training.datasets.generic import build_records
from crmrisk.training.datasets.generic_spec import GenericSpec

DOCUMENT = {
    "domain": "loans",
    "source": "loans.csv",
    "customer_id": "client",
    "label": "bad",
    "positive": "Y",
    "as_of": "2024-04-01",
    "dtypes": {"owed_jan": "float", "owed_feb": "float", "owed_mar": "float", "code": "text"},
    "recode": {"tier": {"values": {1: "gold", 2: "silver"}, "default": "other"}},
    "missing": {"late_days": [-1]},
    "columns": {"back": "-(late_days * (late_days >= 0) + (late_days < 0) * 3)"},
    "profile": {"tier": "categorical", "code": "categorical"},
    "events": {
        "owed": ["categorical", {"type": "numeric", "transform": "none"}],
        "late_days": "numeric",
    },
    "row_events": [
        {"kind": "statement", "id": "m3", "time": "2024-03-31", "fields": {"owed": "owed_mar"}},
        {"kind": "statement", "id": "m1", "time": "2024-01-31", "fields": {"owed": "owed_jan"}},
        {"kind": "statement", "id": "m2", "time": "2024-02-29", "fields": {"owed": "owed_feb"}},
        {
            "kind": "late",
            "time": "2024-03-31",
            "offset_days": "back",
            "offset_hours": 6,
            "when": "(late_days > 0) | (tier == 'gold')",
            "fields": {"late_days": "late_days"},
        },
    ],
    "split": {"method": "rows", "test_fraction": 0.25, "val_fraction": 0.0},
}


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "client": ["a", "b", "c", "d"],
            "code": ["007", "010", "007", "020"],
            "tier": [1, 2, 3, 1],
            "owed_jan": ["10", "x", "30", "40"],
            "owed_feb": [11, 21, 31, 41],
            "owed_mar": [12, 22, 32, 42],
            "late_days": [5, 0, 9, -1],
            "bad": ["Y", "N", "y", "N"],
            "unused": [0, 0, 0, 0],
        }
    )


def test_row_events__each_row_one_record_events_sorted_by_time():
    records, dropped = build_records(GenericSpec.model_validate(DOCUMENT), _frame())
    assert dropped == {"rows_without_customer_id": 0, "rows_with_bad_time": 0}
    assert [r.customer_id for r in records] == ["a", "b", "c", "d"]  # file order
    a, b, c, d = records
    assert [e.event_id for e in a.events] == ["a-m1", "a-m2", "a-3-late", "a-m3"]
    assert a.events[2].event_time == datetime(2024, 3, 26, 6, tzinfo=UTC)
    assert a.events[0].fields == {"owed": 10.0} and a.events[1].fields == {"owed": 11.0}
    assert b.events[0].fields == {"owed": None}  # "x" is no number: missing
    assert [e.kind for e in b.events] == ["statement"] * 3  # no late event: when is false
    assert [e.fields for e in c.events if e.kind == "late"] == [{"late_days": 9}]
    late = d.events[2]  # tier gold: there, with the sentinel -1 as missing, dated 3 days back
    assert late.kind == "late" and late.fields == {"late_days": None}
    assert late.event_time == datetime(2024, 3, 28, 6, tzinfo=UTC)
    assert [r.profile["tier"] for r in records] == ["gold", "silver", "other", "gold"]
    assert [r.profile["code"] for r in records] == ["007", "010", "007", "020"]
    assert [r.label for r in records] == [1, 0, 1, 0]
    assert all(r.as_of == datetime(2024, 4, 1, tzinfo=UTC) for r in records)
    spec = GenericSpec.model_validate(DOCUMENT).feature_spec()
    assert [(f.name, f.encoding) for f in spec.event_fields] == [
        ("owed", "categorical"),
        ("owed", "numeric"),
        ("late_days", "numeric"),
    ]


def test_row_events__a_yaml_spec_loads_and_splits_by_row_order(tmp_path):
    _frame().to_csv(tmp_path / "loans.csv", index=False)
    (tmp_path / "loans.yaml").write_text(yaml.safe_dump(DOCUMENT))
    data = load_domain("loans", tmp_path)
    assert [r.customer_id for r in data.train] == ["a", "b", "c"]
    assert [r.customer_id for r in data.test] == ["d"]


def test_row_events__bad_specs_and_data_are_clear_errors(tmp_path):
    with pytest.raises(SpecError, match="not in events"):
        parse_spec({**DOCUMENT, "events": {"owed": "numeric"}})
    frame = _frame()
    frame.loc[1, "client"] = "a"
    with pytest.raises(DataError, match="several rows"):
        build_records(GenericSpec.model_validate(DOCUMENT), frame)
    with pytest.raises(DataError, match=r"\['owed_mar'\]"):
        build_records(GenericSpec.model_validate(DOCUMENT), _frame().drop(columns="owed_mar"))
    bad = {**DOCUMENT, "row_events": [{**DOCUMENT["row_events"][3], "when": "nonsense +"}]}
    bad["events"] = {"late_days": "numeric"}
    with pytest.raises(DataError, match="cannot evaluate"):
        build_records(GenericSpec.model_validate(bad), _frame())


def test_builtin_document_as_a_user_spec_file_gives_the_adapters_records(tmp_path):
    """A built-in document is an ordinary spec: written as JSON it loads to the same records."""
    path = tmp_path / "mytelco.json"
    source = telco.DOCUMENT["source"]
    data_dir = Path(__file__).resolve().parents[3] / "data"
    path.write_text(json.dumps({**telco.DOCUMENT, "source": str(data_dir / source)}))
    mine = load_domain("generic", tmp_path, seed=0, spec=path)
    theirs = telco.load(data_dir, seed=0)
    for name in ("train", "val", "test"):
        assert mine.splits()[name] == theirs.splits()[name]
    assert mine.spec == theirs.spec
