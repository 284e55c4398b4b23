"""A generated order log unlike the vendored retail file (tests, the demo of a spec, benchmarks).

One row per order line: ``client_ref``, ``placed_at`` (ISO text), ``order_ref``, ``sku``,
``units``, ``unit_cost``, ``channel``, ``state`` (``paid`` or ``refunded``), through 2023.
Some customers fade: after a random day they order at a tenth of their rate, so low spend after
a cutoff is predictable from the orders before it. ``SPEC`` derives a threshold label (net
spend under 25 in the 60 days after a cutoff) and the 60-day net spend as the target.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["SPEC", "order_log"]

_START = pd.Timestamp("2023-01-01")
_DAYS = 365

SPEC: dict[str, Any] = {
    "domain": "orders",
    "source": "orders.csv",
    "customer_id": "client_ref",
    "time": "placed_at",
    "text_columns": ["order_ref", "sku"],
    "columns": {"line_total": "units * unit_cost"},
    "events": {
        "group_by": "order_ref",
        "kind": {"column": "state", "values": {"refunded": "refund"}, "default": "order"},
        "amount": "total",
        "negative_kinds": ["refund"],
        "fields": {
            "total": {"agg": "sum", "column": "line_total", "transform": "signed_log1p"},
            "lines": {"agg": "count"},
            "units": {"agg": "sum", "column": "units"},
            "channel": {"agg": "first", "column": "channel", "fill": "unknown"},
            "gap_days": {"agg": "gap_days", "transform": "signed_log1p"},
        },
    },
    "profile": {
        "recency_days": {"agg": "days_since_last", "kinds": ["order"]},
        "orders_60d": {"agg": "count", "kinds": ["order"], "within_days": 60},
        "spend": {"agg": "sum", "column": "signed_amount", "transform": "signed_log1p"},
        "channel": {"agg": "mode", "column": "channel"},
    },
    "population_kinds": ["order"],
    "label": {
        "rule": "threshold",
        "horizon_days": 60,
        "agg": "sum",
        "column": "signed_amount",
        "op": "<",
        "value": 25,
    },
    "target": {"agg": "sum", "column": "signed_amount", "clip_min": 0.0},
    "cutoffs": {"train": ["2023-05-01", "2023-07-01"], "test": "2023-09-15", "val_fraction": 0.2},
    "min_count": 2,
}


def order_log(customers: int = 400, seed: int = 0, orders_per_month: float = 2.0) -> pd.DataFrame:
    """Order lines for ``customers`` customers (about 2.5 lines per order), vectorised."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(2.0, orders_per_month / 2.0, customers)  # orders per 30 days
    fade = np.where(rng.random(customers) < 0.4, rng.uniform(60, _DAYS, customers), np.inf)
    n_orders = rng.poisson(rate * _DAYS / 30.0) + 1
    owner = np.repeat(np.arange(customers), n_orders)
    day = rng.uniform(0, _DAYS, owner.size)
    faded = day > fade[owner]
    keep = ~faded | (rng.random(owner.size) < 0.1)
    owner, day = owner[keep], day[keep]
    order = np.arange(owner.size)
    refunded = rng.random(order.size) < 0.05
    n_lines = rng.integers(1, 5, order.size)
    line_order = np.repeat(order, n_lines)
    units = rng.integers(1, 6, line_order.size)
    cost = np.round(rng.lognormal(1.5, 0.6, line_order.size), 2)
    channels = np.array(["web", "app", "store"])
    channel = channels[rng.integers(0, 3, customers)][owner]
    seconds = np.round(day * 86400).astype("int64")
    placed = (_START + pd.to_timedelta(seconds[line_order], unit="s")).strftime("%Y-%m-%d %H:%M:%S")
    return pd.DataFrame(
        {
            "client_ref": np.char.add("c", owner[line_order].astype(str)),
            "placed_at": placed,
            "order_ref": np.char.add("o", line_order.astype(str)),
            "sku": np.char.add("s", rng.integers(0, 300, line_order.size).astype(str)),
            "units": units,
            "unit_cost": cost,
            "channel": channel[line_order],
            "state": np.where(refunded[line_order], "refunded", "paid"),
        }
    )
