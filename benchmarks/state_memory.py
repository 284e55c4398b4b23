"""Memory of partition-owned state: bytes per customer held by a worker, measured.

Fills a ``WindowTable`` (credit's widths: 49-float events, 34-float profiles) with synthetic
customers, in batches as the pipeline applies them: once with 6 events and a profile per
customer (credit's history), once with full windows (W = 32 events). Reports the table's own
count (``nbytes``) and the growth of the process's resident memory, per customer and for one
million customers, plus an ``AlertTable`` of the same customers.

Writes ``benchmarks/results/state_memory.json``. Run: ``python -m benchmarks.state_memory``.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.checkpoints import ROOT
from crmrisk.state import AlertTable, Appends, WindowTable

E, P, W = 49, 34, 32


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def _batch(customers: list[str], step: int, rng: np.random.Generator) -> Appends:
    n = len(customers)
    profile = step == 0
    return Appends(
        customers=customers,
        event_ids=[f"{c}-{'p' if profile else step}" for c in customers],
        times_ms=np.full(n, 1_700_000_000_000 + step * 86_400_000, np.int64),
        kinds=["profile" if profile else "statement"] * n,
        vectors=rng.random((n, E), dtype=np.float32),
        profiles=rng.random((n, P), dtype=np.float32),
        is_profile=np.full(n, profile),
        hashes=rng.integers(1, 2**63, n).astype(np.uint64),
        exposure=np.full(n, 50_000.0),
        partitions=np.zeros(n, np.int32),
        redelivered=np.zeros(n, bool),
    )


def fill(customers: int, events: int, batch: int = 4096) -> dict:
    gc.collect()
    before = _rss_bytes()
    started = time.perf_counter()
    rng = np.random.default_rng(0)
    table = WindowTable(W, E, P, ttl_s=1e9)
    alerts = AlertTable(ttl_s=1e9)
    ids = [f"customer-{i:08d}" for i in range(customers)]
    serial = 0
    for step in range(events + 1):  # the profile, then the events
        for start in range(0, customers, batch):
            chunk = ids[start : start + batch]
            serial += 1
            table.apply(_batch(chunk, step, rng), now_s=0.0, serial=serial)
            if step == 0:
                alerts.slots(chunk, np.zeros(len(chunk), np.int32), 0.0, serial)
    took = time.perf_counter() - started
    gc.collect()
    grown = _rss_bytes() - before
    own = table.nbytes()
    return {
        "customers": customers,
        "events_per_customer": min(events, W),
        "table_nbytes": own,
        "rss_growth_bytes": grown,
        "bytes_per_customer_nbytes": round(own / customers),
        "bytes_per_customer_rss": round(grown / customers),
        "per_million_customers_gib_rss": round(grown / customers * 1e6 / 2**30, 2),
        "fill_seconds": round(took, 1),
        "events_applied_per_s": round(customers * (events + 1) / took),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000, help="with 6 events each")
    parser.add_argument("--full-customers", type=int, default=200_000, help="with W events each")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/state_memory.json")
    args = parser.parse_args(argv)
    result = {
        "widths": {"event_dim": E, "profile_dim": P, "window": W},
        "credit_like_6_events": fill(args.customers, 6),
        "full_windows": fill(args.full_customers, W),
        "note": "rss growth includes the alert table and the slot map; a fresh process per run "
        "would be cleaner, both runs share one here (the second starts from the first's heap)",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
