"""Redis Cluster vs one Redis (not a test): what the cluster costs the hot path, in one run.

Against the local broker and Redis (``crmrisk up``) and a Redis Cluster of 3 masters + 3
replicas that this benchmark starts with the launcher (``crmrisk up --redis-cluster``) in a
temporary folder on free ports, on the same machine:

1. the state's fenced writes alone: the window records that batches of 256 credit events leave
   (computed once, in memory, as a worker's ``WindowTable`` does) written per batch (one script
   call on one Redis; one call per hash slot plus one for the fences on the cluster), to one
   Redis, to the cluster, and to the cluster with ``WAIT 1`` (what a failover-safe deployment
   runs); rounds interleaved, the median reported;
2. end to end: ``crmrisk worker ingest`` processes drain one backlog of credit events on fresh
   topics (``benchmarks/stream_e2e.py``'s method: the clock starts when the group is stable),
   with one Redis, then with the cluster and ``WAIT 1``.

Six redis-servers and Kafka share this machine's two cores, so the cluster cannot be faster
here: this measures its client-side and round-trip cost, not the capacity it adds when its
masters run on machines of their own.

Writes ``benchmarks/results/redis_cluster.json``. Run: ``python -m benchmarks.redis_cluster``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from benchmarks.checkpoints import random_checkpoint
from benchmarks.stream_e2e import run_backlog
from crmrisk.commands.services import build_launcher
from crmrisk.deploy import free_port_block
from crmrisk.settings import Settings
from crmrisk.state import Appends, PartitionFence, PartitionWrite, WindowTable
from crmrisk.stream.transform import event_time_ms
from crmrisk.training.datasets.feed import dataset_events, load_records
from crmrisk.wiring.clients import redis_client

ROOT = Path(__file__).resolve().parents[1]


def _batches(events, encoder, batch: int = 256) -> list[list[tuple[str, str, bytes]]]:
    """Per batch of ``events``: the (domain, customer, window record) it leaves."""
    table = WindowTable(32, encoder.event_dim, encoder.profile_dim, 3600)
    out = []
    for start in range(0, len(events), batch):
        chunk = events[start : start + batch]
        n = len(chunk)
        profile = np.array([e.kind == "profile" for e in chunk])
        applied = table.apply(
            Appends(
                customers=[e.customer_id for e in chunk],
                event_ids=[e.event_id for e in chunk],
                times_ms=np.array([event_time_ms(e) for e in chunk], np.int64),
                kinds=[e.kind for e in chunk],
                vectors=np.stack([np.zeros(encoder.event_dim, np.float32) if p else
                                  encoder.encode_event(e.kind, e.fields)
                                  for e, p in zip(chunk, profile, strict=True)]),
                profiles=np.stack([encoder.encode_profile(e.fields) if p else
                                   np.zeros(encoder.profile_dim, np.float32)
                                   for e, p in zip(chunk, profile, strict=True)]),
                is_profile=profile,
                hashes=np.zeros(n, np.uint64),
                exposure=np.full(n, np.nan),
                partitions=np.zeros(n, np.int32),
                redelivered=np.zeros(n, bool),
            ),
            now_s=0.0,
            serial=start + 1,
        )  # fmt: skip
        out.append([("credit", c, raw) for c, _, raw in table.records(applied.slots, {0: 1})])
    return out


def store_rate(settings: Settings, batches, events: int, batch: int = 256) -> float:
    """Events/s writing ``batches`` under a fresh prefix (keys deleted afterwards)."""
    r = settings.redis
    client = redis_client(settings)
    prefix = f"bench:{uuid.uuid4().hex[:8]}"
    fence = PartitionFence(client, prefix, 600, r.wait_replicas, 2000)
    epoch = fence.claim("bench", 0, 1).epoch
    started = time.perf_counter()
    expected = None
    for i, windows in enumerate(batches):
        write = PartitionWrite(0, epoch, expected, (i + 1) * batch, windows=windows)
        assert not fence.write("bench", [write])
        expected = write.new
    took = time.perf_counter() - started
    for key in client.scan_iter(match=f"{prefix}:*", count=5000):
        client.delete(key)
    client.close()
    return events / took


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=3000, help="Credit customers replayed.")
    parser.add_argument("--rounds", type=int, default=3, help="Store rounds per configuration.")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/redis_cluster.json")
    args = parser.parse_args(argv)
    # Reason codes cost the alerting path (benchmarks/reasons.py measures them); this run
    # compares Redis deployments, so the workers it starts explain nothing.
    os.environ["RISK_SCORING__REASONS"] = "0"

    from crmrisk.lifecycle.checkpoint import load_checkpoint
    from crmrisk.model.features import FeatureEncoder

    base = Settings()
    records = load_records("credit", ROOT / "data", 0)[: args.customers]
    events = dataset_events(records, "credit")
    scored = sum(e.kind != "profile" for e in events)
    workdir = Path(tempfile.mkdtemp(prefix="bench-redis-cluster-"))
    checkpoint = random_checkpoint(workdir)
    encoder = FeatureEncoder.from_dict(load_checkpoint(checkpoint)[1]["encoder"])
    batches = _batches(events, encoder)

    launcher = build_launcher(
        base.services.model_copy(
            update={
                "home": workdir / "var",
                "redis_cluster_port": free_port_block(6, 12000, 22000, offsets=(0, 10000)),
            }
        )
    )
    launcher.up(kafka=False, redis=False, redis_cluster=True, timeout_s=120)
    cluster_url = launcher.redis_cluster.url
    configs = {
        "single": {"url": base.redis.url},
        "cluster": {"url": cluster_url, "cluster": True},
        "cluster_wait1": {"url": cluster_url, "cluster": True, "wait_replicas": 1},
    }
    try:
        store: dict[str, list[float]] = {name: [] for name in configs}
        for _ in range(args.rounds):
            for name, redis in configs.items():
                s = Settings(redis={**base.redis.model_dump(), **redis})
                store[name].append(store_rate(s, batches, len(events)))
                print(f"store {name}: {store[name][-1]:,.0f} events/s", flush=True)
        pairs = [(e.key, e.to_bytes()) for e in events]
        e2e = {}
        for name in ("single", "cluster_wait1"):
            e2e[name] = run_backlog(
                base, args.partitions, checkpoint, args.workers, pairs, scored, workdir,
                redis=configs[name],
            )  # fmt: skip
            print(f"end to end {name}: {e2e[name]['events_per_s']:,.0f} events/s", flush=True)
    finally:
        launcher.down(kafka=False, redis=False, cluster=False, redis_cluster=True)
    medians = {name: statistics.median(v) for name, v in store.items()}
    result = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "reason_codes": "off (RISK_SCORING__REASONS=0)",
        "events": len(events),
        "store_events_per_s": {name: [round(v) for v in vs] for name, vs in store.items()},
        "store_median_events_per_s": {k: round(v) for k, v in medians.items()},
        "store_ratio_cluster_to_single": round(medians["cluster"] / medians["single"], 3),
        "store_ratio_cluster_wait1_to_single": round(
            medians["cluster_wait1"] / medians["single"], 3
        ),
        "end_to_end": e2e,
        "end_to_end_ratio_cluster_wait1_to_single": round(
            e2e["cluster_wait1"]["events_per_s"] / e2e["single"]["events_per_s"], 3
        ),
        "note": "6 redis-servers, Kafka and the workers share 2 cores: client + round-trip cost "
        "of the cluster, not its added capacity",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "end_to_end"}, indent=2))
    return result


if __name__ == "__main__":
    main()
