"""to_arrays: serving-store order, right padding, window truncation, event ids; fit_encoder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from crmrisk.model.features import FeatureSpec, FieldRole
from crmrisk.stream.events import CustomerEvent
from crmrisk.stream.transform import window as serving_window
from crmrisk.training.datasets.arrays import fit_encoder, ordered_window, to_arrays
from crmrisk.training.datasets.records import CustomerRecord

SPEC = FeatureSpec("shop", (FieldRole("seq", "numeric", "none"),), (), min_count=1)
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _record(cid: str, n: int, split: str = "train") -> CustomerRecord:
    events = [
        CustomerEvent(
            event_id=f"{cid}-{i:03d}",
            customer_id=cid,
            event_time=T0 + timedelta(hours=i),
            domain="shop",
            kind="buy",
            fields={"seq": i},
        )
        for i in range(n)
    ]
    return CustomerRecord(cid, {}, events, n % 2, None, split, T0 + timedelta(days=30))


def test_to_arrays__right_padded_oldest_first_latest_window_kept():
    records = [_record("a", 3), _record("b", 40), _record("c", 0), _record("d", 1)]
    encoder = fit_encoder(SPEC, records)
    arrays = to_arrays(records, encoder, window=32)
    assert arrays.events.shape == (4, 32, encoder.event_dim)
    assert arrays.mask.sum(axis=1).tolist() == [3, 32, 0, 1]
    # real events first, padding after
    assert not (arrays.mask[:, 1:] & ~arrays.mask[:, :-1]).any()
    assert (arrays.events[~arrays.mask] == 0).all()
    # "b" keeps its latest 32 (8..39), oldest first
    assert arrays.event_ids[1] == [f"b-{i:03d}" for i in range(8, 40)]
    column = encoder.event_feature_names().index("seq")
    seq = arrays.events[1, :, column] * encoder.event_columns[0].scale
    seq += encoder.event_columns[0].center
    np.testing.assert_allclose(seq, np.arange(8, 40), atol=1e-4)
    assert arrays.event_ids[2] == []
    assert arrays.customer_ids == ["a", "b", "c", "d"]
    assert arrays.target is None


def test_to_arrays__rows_equal_per_event_encoding():
    records = [_record("a", 5), _record("b", 2)]
    encoder = fit_encoder(SPEC, records)
    arrays = to_arrays(records, encoder, window=4)
    for row, record in enumerate(records):
        kept = record.events[-4:]
        for t, event in enumerate(kept):
            np.testing.assert_allclose(
                arrays.events[row, t], encoder.encode_event(event.kind, event.fields), atol=1e-6
            )


def test_to_arrays__pad_to_and_short_window():
    records = [_record("a", 5)]
    encoder = fit_encoder(SPEC, records)
    assert to_arrays(records, encoder, window=2).events.shape[1] == 2
    assert to_arrays(records, encoder, window=8, pad_to=8).events.shape[1] == 8
    with pytest.raises(ValueError, match="pad_to"):
        to_arrays(records, encoder, window=8, pad_to=3)


def test_ordered_window__matches_the_serving_store_order():
    rng = np.random.default_rng(0)
    events = list(_record("a", 20).events)
    # same-time ties, a duplicate id and a shuffled arrival order
    tie = events[5].model_copy(update={"event_id": "a-005b"})
    events += [tie, events[3]]
    order = rng.permutation(len(events))
    shuffled = [events[i] for i in order]
    assert [e.event_id for e in ordered_window(shuffled, 7)] == [
        e.event_id for e in serving_window(shuffled, 7)
    ]


def test_to_arrays__target_nan_where_missing():
    a, b = _record("a", 2), _record("b", 2)
    a = CustomerRecord(a.customer_id, a.profile, a.events, 1, 12.5, "train", a.as_of)
    arrays = to_arrays([a, b], fit_encoder(SPEC, [a, b]), window=4)
    assert arrays.target[0] == 12.5 and np.isnan(arrays.target[1])


def test_fit_encoder__refuses_non_training_records():
    with pytest.raises(ValueError, match="training records only"):
        fit_encoder(SPEC, [_record("a", 2), _record("b", 2, split="test")])
