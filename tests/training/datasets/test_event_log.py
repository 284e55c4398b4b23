"""Event-log specs read into an ``EventLog``: dropped rows counted by reason."""

from __future__ import annotations

import copy

import pandas as pd

from crmrisk.training.datasets import EventLogSpec
from crmrisk.training.datasets.event_log import event_log
from crmrisk.training.datasets.synthetic_log import SPEC, order_log


def test_event_log__unusable_rows_are_counted_by_reason():
    spec, lines = EventLogSpec.model_validate(copy.deepcopy(SPEC)), order_log(50, seed=4)
    bad = lines.head(6).copy()
    bad.loc[bad.index[:2], "client_ref"] = None
    bad.loc[bad.index[2:5], "placed_at"] = "yesterday-ish"
    bad.loc[bad.index[5:], "order_ref"] = None
    bad["order_ref"] = bad["order_ref"].where(bad["order_ref"].isna(), "bad")
    data = event_log(spec, pd.concat([lines, bad], ignore_index=True))
    assert data.dropped == {
        "rows_without_customer_id": 2,
        "rows_with_bad_time": 3,
        "rows_without_order_ref": 1,
    }
    assert data.rows == len(lines) + 6
    assert len(data.table) == lines["order_ref"].nunique()
