"""Recovery time: rebuilding partition state from ``crm.events`` vs loading it from a changelog.

When Redis loses a partition's state, the worker restores it from the input topic: every
retained event goes through decode, window and the model again (alert states depend on the
scores), nothing is published. Its cost grows with retained history. Kafka Streams' answer is
a compacted changelog topic keyed by customer: a restore reads one record per customer, so its
cost grows with customers. Measured here, in one run, on the local broker and Redis:

1. rebuild from events: the credit feed published to a fresh 4-partition topic, then every
   partition rebuilt in-process (``Pipeline.rebuild``, what ``crmrisk state rebuild --force``
   runs) with the trained model: events per second, seconds per million retained events;
2. load from a changelog: the window records that rebuild left (one per customer) published
   to a fresh topic, then read back and loaded into a ``WindowTable``: customers per second,
   seconds per million customers.

Writes ``benchmarks/results/restore.json``. Run: ``python -m benchmarks.restore``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from pathlib import Path

import torch

from benchmarks.checkpoints import ROOT, trained_checkpoint
from benchmarks.stream_e2e import _publish, cleanup, make_settings, read_topic
from crmrisk.lifecycle import load_checkpoint
from crmrisk.settings import Settings
from crmrisk.state import WindowTable
from crmrisk.state.keys import window_key
from crmrisk.state.records import unpack_window
from crmrisk.training.datasets.feed import dataset_events, load_records
from crmrisk.wiring.clients import redis_client
from crmrisk.wiring.models import load_models
from crmrisk.wiring.worker import build_worker


async def rebuild_all(settings: Settings, checkpoint: Path, partitions: int) -> tuple[int, float]:
    worker = build_worker(
        settings, "ingest", load_models(settings, ["credit"], {"credit": checkpoint})
    )
    pipeline = worker.pipeline
    topic = settings.kafka.topics.events
    history = pipeline.history
    ends = {p: await history.end(topic, p) for p in range(partitions)}
    started = time.perf_counter()
    replayed = 0
    try:
        for p, end in ends.items():
            replayed += await pipeline.rebuild(p, end)
    finally:
        took = time.perf_counter() - started
        await pipeline.close()
        await worker.consumer.stop()
        worker.client.close()
    return replayed, took


def changelog(settings: Settings, customers: list[str], event_dim: int, profile_dim: int) -> dict:
    """Publish the customers' window records as a changelog, then time reading + loading it."""
    r = settings.redis
    client = redis_client(settings)
    raw = [client.get(window_key(r.key_prefix, "credit", c)) for c in customers]
    client.close()
    pairs = [(c.encode(), v) for c, v in zip(customers, raw, strict=True) if v is not None]
    log_settings = make_settings(Settings(), uuid.uuid4().hex[:8], 4)
    try:
        topic = log_settings.kafka.topics.events
        asyncio.run(_publish(log_settings, pairs, None))
        started = time.perf_counter()
        records = asyncio.run(read_topic(log_settings, topic, len(pairs), timeout_s=300))
        table = WindowTable(32, event_dim, profile_dim, 1e9)
        for record in records:
            table.load(record.key.decode(), record.partition, unpack_window(record.value))
        took = time.perf_counter() - started
    finally:
        cleanup(log_settings)
    return {
        "customers": len(records),
        "bytes": sum(len(v) for _, v in pairs),
        "seconds": round(took, 2),
        "customers_per_s": round(len(records) / took),
        "seconds_per_million_customers": round(took / len(records) * 1e6, 1),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=15_000, help="credit customers (x7)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/restore.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    checkpoint = trained_checkpoint()
    records = load_records("credit", ROOT / "data", 0)[: args.customers]
    events = dataset_events(records, "credit")
    s = make_settings(Settings(), uuid.uuid4().hex[:8], 4, scoring={"reasons": 0})
    try:
        asyncio.run(_publish(s, [(e.key, e.to_bytes()) for e in events], None))
        replayed, took = asyncio.run(rebuild_all(s, checkpoint, 4))
        encoder = load_checkpoint(checkpoint)[1]["encoder"]
        log = changelog(s, [r.customer_id for r in records], encoder["event_dim"],
                        encoder["profile_dim"])  # fmt: skip
    finally:
        cleanup(s)
    result = {
        "events": replayed,
        "customers": len(records),
        "rebuild_from_events": {
            "seconds": round(took, 2),
            "events_per_s": round(replayed / took),
            "seconds_per_million_events": round(took / replayed * 1e6, 1),
        },
        "load_from_changelog": log,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
