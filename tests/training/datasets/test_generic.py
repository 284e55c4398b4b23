"""The generic path: a synthetic CRM event file plus a YAML spec, no domain code."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from crmrisk.training.datasets import GenericSpec, fit_encoder, load_domain, to_arrays
from crmrisk.training.datasets.generic import build_records

SPEC = {
    "domain": "subscriptions",
    "source": "subscriptions.csv",
    "customer_id": "user",
    "time": "ts",
    "label": "churned",
    "positive": "yes",
    "target": "next_spend",
    "kind": "event_type",
    "profile": {"plan": "categorical", "age": "numeric"},
    "events": {
        "amount": {"type": "numeric", "transform": "signed_log1p"},
        "channel": "categorical",
    },
    "split": {"method": "random", "test_fraction": 0.25, "val_fraction": 0.2},
    "min_count": 2,
}


def _synthetic(n_customers: int = 300, seed: int = 0) -> pd.DataFrame:
    """Churners complain and spend less in their last events: a signal a model can find."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(n_customers):
        churn = rng.random() < 0.3
        start = pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(days=int(rng.integers(0, 200)))
        for k in range(int(rng.integers(2, 12))):
            complaint = rng.random() < (0.5 if churn else 0.1)
            rows.append(
                {
                    "user": f"u{c}",
                    "ts": (start + pd.Timedelta(days=7 * k)).isoformat(),
                    "event_type": "complaint" if complaint else "purchase",
                    "amount": float(rng.lognormal(2 if churn else 3, 0.5)),
                    "channel": rng.choice(["web", "app"]),
                    "plan": "basic" if c % 3 else "pro",
                    "age": int(20 + c % 50),
                    "churned": "yes" if churn else "no",
                    "next_spend": 0.0 if churn else float(rng.gamma(2, 50)),
                }
            )
    rows.append({**rows[0], "user": None})  # unusable: no customer id
    rows.append({**rows[0], "ts": "not a time"})  # unusable: bad time
    return pd.DataFrame(rows)


def test_generic__spec_file_by_name_gives_records_arrays_and_a_learnable_signal(tmp_path):
    frame = _synthetic()
    frame.to_csv(tmp_path / "subscriptions.csv", index=False)
    (tmp_path / "subscriptions.yaml").write_text(yaml.safe_dump(SPEC))
    data = load_domain("subscriptions", tmp_path, seed=1)
    assert data.domain == "subscriptions" and data.has_target
    assert (len(data.train), len(data.val), len(data.test)) == (180, 45, 75)
    assert data.info["rows_without_customer_id"] == 1 and data.info["rows_with_bad_time"] == 1
    record = data.train[0]
    times = [e.event_time for e in record.events]
    assert times == sorted(times)
    assert record.as_of == record.events[-1].event_time
    assert {e.kind for r in data.train for e in r.events} == {"purchase", "complaint"}
    assert set(record.profile) == {"plan", "age"}
    encoder = fit_encoder(data.spec, data.train)
    train, test = (to_arrays(rs, encoder, window=8) for rs in (data.train, data.test))
    assert train.events.shape[1:] == (8, encoder.event_dim)
    assert train.target is not None and np.isfinite(train.target).all()

    def flat(a):  # mean-pooled events + profile: enough to see the planted signal
        pooled = a.events.sum(1) / np.maximum(a.mask.sum(1, keepdims=True), 1)
        return np.hstack([pooled, a.profile])

    model = LogisticRegression(max_iter=1000).fit(flat(train), train.label)
    assert roc_auc_score(test.label, model.predict_proba(flat(test))[:, 1]) > 0.85


def test_generic__labels_compare_as_text_and_target_is_read():
    spec = GenericSpec.model_validate({**SPEC, "positive": 1, "target": None})
    frame = pd.DataFrame(
        {
            "user": ["a", "a", "b", "c"],
            "ts": ["2024-01-01", "2024-01-02", "2024-01-01", "2024-01-03"],
            "event_type": ["x", "y", "x", "x"],
            "amount": [1.0, None, 3.0, 4.0],
            "channel": ["web", "app", None, "web"],
            "plan": ["p", None, "q", "q"],
            "age": [30, 31, None, 40],
            "churned": [None, 1.0, 0.0, 1.0],
        }
    )
    records, dropped = build_records(spec, frame)
    by = {r.customer_id: r for r in records}
    assert [by[c].label for c in "abc"] == [1, 0, 1]
    assert by["a"].profile == {"plan": "p", "age": 31}  # last non-missing value per column
    assert by["a"].events[1].fields == {"amount": None, "channel": "app"}
    assert by["b"].target is None and dropped == {
        "rows_without_customer_id": 0,
        "rows_with_bad_time": 0,
    }


def test_generic__time_split_and_contract_shaped_jsonl(tmp_path):
    frame = _synthetic(60).dropna(subset=["user"])
    frame = frame[frame["ts"] != "not a time"]
    with (tmp_path / "events.jsonl").open("w") as out:
        for row in frame.to_dict("records"):
            fields = {k: row[k] for k in ("amount", "channel", "plan", "age", "churned")}
            out.write(
                json.dumps(
                    {
                        "customer_id": row["user"],
                        "event_time": row["ts"],
                        "kind": row["event_type"],
                        "fields": fields,
                    }
                )
                + "\n"
            )
    spec = {
        **SPEC,
        "source": "events.jsonl",
        "customer_id": "customer_id",
        "time": "event_time",
        "kind": "kind",
        "target": None,
        "split": {"method": "time", "test_fraction": 0.2, "val_fraction": 0.25},
    }
    data = load_domain("generic", tmp_path, spec=spec)
    assert (len(data.train), len(data.val), len(data.test)) == (36, 12, 12)
    assert max(r.as_of for r in data.train) <= min(r.as_of for r in data.val)
    assert max(r.as_of for r in data.val) <= min(r.as_of for r in data.test)
    assert not data.has_target and all(r.target is None for r in data.test)


def test_generic__epoch_times_need_a_unit():
    frame = _synthetic(5).dropna(subset=["user"])
    frame = frame[frame["ts"] != "not a time"].copy()
    epoch = pd.Timestamp("1970-01-01", tz="UTC")
    frame["ts"] = (pd.to_datetime(frame["ts"], utc=True) - epoch) // pd.Timedelta(seconds=1)
    with pytest.raises(ValueError, match="time_unit"):
        build_records(GenericSpec.model_validate(SPEC), frame)
    records, _ = build_records(GenericSpec.model_validate({**SPEC, "time_unit": "s"}), frame)
    assert min(r.as_of for r in records).year == 2024


def test_generic__clear_errors():
    spec = GenericSpec.model_validate(SPEC)
    with pytest.raises(ValueError, match=r"\['age'\]"):
        build_records(spec, _synthetic(5).drop(columns="age"))
    with pytest.raises(ValueError, match="unknown domain"):
        load_domain("nowhere", "/nonexistent")
    with pytest.raises(ValueError):
        GenericSpec.model_validate({**SPEC, "profile": {"age": "ordinal"}})


def test_generic__a_positive_value_matching_no_label_is_a_clear_error(tmp_path):
    _synthetic(60).to_csv(tmp_path / "subscriptions.csv", index=False)
    spec = {**SPEC, "positive": "churned!"}
    with pytest.raises(ValueError, match=r"all 60 customers have label 0.*positive=.churned!."):
        load_domain("generic", tmp_path, 0, spec=spec)
