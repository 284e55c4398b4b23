"""The hot path, stage by stage: CPU microseconds per event of the worker and of Redis.

One process runs the ingest pipeline (``stream.pipeline.Pipeline``, as a worker builds it) on
batches of real credit events, as Kafka would deliver them (JSON bytes with keys, offsets and
timestamps), against the local Redis, with a sink that acknowledges at once and keeps nothing.
Kafka itself is left out (``benchmarks/kafka_clients.py`` measures the clients; the end-to-end
figure is ``benchmarks/stream_e2e.py``). Per stage it reports the CPU of the thread that ran it
(``time.thread_time``: the completer's state writes and the explanations run in threads of
their own, overlapping the next batches), and Redis's CPU (``INFO cpu``) for the whole run, so
the figures hold on a busy machine better than wall time does.

The model is the trained credit model (``benchmarks/checkpoints.py``) unless ``--random``;
reason codes are off unless ``--reasons`` (their cost per alert is ``benchmarks/reasons.py``'s).

Writes ``benchmarks/results/hot_path.json``. Run: ``.venv/bin/python -m benchmarks.hot_path``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
import uuid
import zlib
from collections import defaultdict, namedtuple
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
import torch

from benchmarks.checkpoints import ROOT, random_checkpoint, trained_checkpoint
from crmrisk.state import AlertTable, PartitionFence, WindowTable
from crmrisk.stream.alert_policy import AlertPolicy
from crmrisk.stream.alerting import Alerter
from crmrisk.stream.field_contract import FieldContract
from crmrisk.stream.metrics import WorkerMetrics
from crmrisk.stream.models import DomainModel, load_domain_model
from crmrisk.stream.outage import Outage
from crmrisk.stream.ownership import Ownership
from crmrisk.stream.pipeline import Pipeline
from crmrisk.stream.ports import Topics
from crmrisk.stream.score_side import ScoreSide
from crmrisk.stream.stages import BatchStages, EventSide
from crmrisk.training.datasets.feed import dataset_events, load_records

__all__ = ["NullSink", "Record", "Source", "bench_pipeline", "credit_records", "main"]

Record = namedtuple("Record", "topic partition offset key value timestamp")


class NullSink:
    """Acknowledges every message at once; counts them."""

    def __init__(self) -> None:
        self.messages: dict[str, int] = defaultdict(int)

    def send(self, topic: str, messages, delivery) -> int:
        n = sum(1 for _ in messages)
        self.messages[topic] += n
        delivery.sent(n)
        for _ in range(n):
            delivery.acked()
        return n

    async def delivered(self, delivery) -> None:
        await delivery.wait(60.0)

    def resend(self, delivery) -> int:
        return 0


class Source:
    """Batches from a list, as the one member of a group owning every partition."""

    def __init__(self, batches: list[list[Record]]) -> None:
        self.batches = batches

    async def next_batch(self, idle_timeout_s: float) -> list[Record]:
        return self.batches.pop(0) if self.batches else []

    def owns(self, partition: int) -> bool:
        return True

    def generation(self) -> int:
        return 1

    async def commit(self, offsets) -> bool:
        return True

    def rewind(self, partition: int, offset: int) -> None:
        return None

    async def lag(self) -> int:
        return 0


def credit_records(customers: int, partitions: int = 4) -> list[Record]:
    """The credit feed of ``customers`` as records, keyed and spread over ``partitions``."""
    events = dataset_events(load_records("credit", ROOT / "data", 0)[:customers], "credit")
    offsets = [0] * partitions
    out = []
    for i, e in enumerate(events):
        p = zlib.crc32(e.key) % partitions
        out.append(Record("crm.events", p, offsets[p], e.key, e.to_bytes(), 1_700_000_000_000 + i))
        offsets[p] += 1
    return out


def bench_pipeline(
    kit: DomainModel, client: redis.Redis, prefix: str, batches: list[list[Record]]
) -> tuple[Pipeline, NullSink]:
    """The ingest pipeline as ``crmrisk/wiring/worker.py`` wires it, on a list and Redis."""
    fence = PartitionFence(client, prefix, 3600, 0, 1000)
    encoder = kit.encoder
    stages = BatchStages(
        "crm.events",
        Ownership("crm.events", fence),
        fence,
        events=EventSide(
            {"credit": encoder},
            {"credit": FieldContract.of(encoder, "strict", "count", "LIMIT_BAL")},
            {"credit": WindowTable(32, encoder.event_dim, encoder.profile_dim, 3600)},
            {"credit": "LIMIT_BAL"},
            64 * 1024,
            None,
        ),
        scoring=ScoreSide(
            {"credit": kit.scorer},
            {"credit": AlertTable(3600)},
            Alerter(AlertPolicy(0.5, 0.05, 3600.0), {"credit": "default"}),
        ),
    )
    sink, metrics = NullSink(), WorkerMetrics()
    pipeline = Pipeline(
        Source(batches), sink, fence, stages, Topics("d", "s", "a"), metrics,
        outage=Outage(metrics.outage_retries, max_s=5.0, give_up_s=900.0),
        max_inflight=4, max_customers=1_000_000,
    )  # fmt: skip
    return pipeline, sink


def redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


class _Timed:
    """Wraps a callable: adds the CPU seconds of the thread running it to ``totals[name]``."""

    def __init__(self, name: str, fn, totals: dict) -> None:
        self.name, self.fn, self.totals = name, fn, totals

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.totals[self.name] += time.thread_time() - started


def run(customers: int, batch: int, redis_url: str, threads: int, kit: DomainModel) -> dict:
    torch.set_num_threads(threads)
    values = credit_records(customers)
    batches = [values[i : i + batch] for i in range(0, len(values), batch)]
    prefix = f"bench-hot-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(redis_url)
    pipeline, sink = bench_pipeline(kit, client, prefix, batches)
    stages, table = pipeline.stages, pipeline.stages.events.windows["credit"]
    totals: dict[str, float] = defaultdict(float)
    score = stages.scoring.score
    wrapped = {
        "1 decode + validate + encode": (stages, "decode"),
        "2 load customers (Redis read)": (stages, "load"),
        "3 window (apply the batch)": (table, "apply"),
        "4a model (pad + forward + top positions)": (kit.scorer, "score_windows"),
        "4c alert decisions": (stages.scoring, "decide"),
        "5 state snapshot (records)": (table, "records"),
        "6 state write (fenced script call)": (pipeline.state, "write"),
    }
    for name, (owner, attr) in wrapped.items():
        setattr(owner, attr, _Timed(name, getattr(owner, attr), totals))
    stages.scoring.score = _Timed("4 score + messages + decide", score, totals)
    own, server, wall = time.process_time(), redis_cpu(client), time.perf_counter()

    async def drain() -> int:
        n = 0
        while True:
            report = await pipeline.step(0.0)
            if not report.consumed:
                await pipeline.close()
                return n
            n += report.consumed

    consumed = asyncio.run(drain())
    own, server = time.process_time() - own, redis_cpu(client) - server
    wall = time.perf_counter() - wall
    for key in client.scan_iter(f"{prefix}:*", count=5000):
        client.delete(key)
    per = 1e6 / consumed
    inside = totals.pop("4 score + messages + decide")
    totals["4b score messages (JSON bytes, top events)"] = inside - sum(
        v for k, v in totals.items() if k.startswith(("4a", "4c"))
    )
    totals["7 rest (loop, completer, sink, metrics)"] = own - sum(totals.values())
    alerts = sink.messages["a"]
    return {
        "events": consumed,
        "scores": sink.messages["s"],
        "alerts": alerts,
        "batch": batch,
        "torch_threads": threads,
        "model": {
            "version": kit.version,
            "variant": kit.manifest.get("variant"),
            "members": kit.manifest["hyperparameters"].get("members", 1),
            "served_as": type(kit.scorer._model).__name__,  # noqa: SLF001 - fused or not
            "reasons": kit.scorer.explainer is not None,
        },
        "stages_us_per_event": {k: round(v * per, 2) for k, v in sorted(totals.items())},
        "total_us_per_event": {
            "worker_cpu": round(own * per, 2),
            "redis_cpu": round(server * per, 2),
        },
        "wall_events_per_s": round(consumed / wall),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (workers use 1)")
    parser.add_argument("--random", action="store_true", help="random weights, not trained")
    parser.add_argument("--reasons", type=int, default=0, help="reason codes per alert")
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/hot_path.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = random_checkpoint(Path(tmp)) if args.random else trained_checkpoint()
        kit = load_domain_model(checkpoint, "credit", torch.device("cpu"), 3, args.reasons)
    result = run(args.customers, args.batch, args.redis, args.threads, kit)
    result["machine"] = {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "load_average_at_end": os.getloadavg(),
    }
    result["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for name, cost in result["stages_us_per_event"].items():
        print(f"{name:50s} {cost:7.1f} us")
    total = result["total_us_per_event"]
    print(f"{'total':50s} worker {total['worker_cpu']:7.1f} us  redis {total['redis_cpu']:6.1f} us")
    return result


if __name__ == "__main__":
    main()
