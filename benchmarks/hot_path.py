"""The hot path, stage by stage: CPU microseconds per event of the worker and of Redis.

One process runs the ingest pipeline's stages on batches of real credit events (as Kafka would
deliver them: JSON bytes with keys, offsets and timestamps) against the local Redis, with the
default model (random weights: cost does not depend on them) and a sink that only keeps the
bytes. Kafka itself is left out (``benchmarks/kafka_clients.py`` measures the clients; the
end-to-end figure is ``benchmarks/stream_e2e.py``). Per stage it reports this process's CPU
(``time.process_time``) and Redis's (``INFO cpu``) per event, so the figures hold on a busy
machine better than wall time does.

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
from collections import defaultdict, namedtuple
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
import torch
from stream.intake import EventIntake

from benchmarks.stream_e2e import ROOT, make_checkpoint
from state import AlertStateStore, CustomerSequenceStore, LatestScoreStore
from stream.alert_policy import AlertPolicy
from stream.alerting import Alerter
from stream.metrics import WorkerMetrics
from stream.models import load_domain_model
from stream.pipeline import Pipeline, Scoring, Topics
from training.datasets.feed import dataset_events, load_records

__all__ = ["main"]

Record = namedtuple("Record", "topic partition offset key value timestamp")


class _NullSink:
    def __init__(self) -> None:
        self.messages = 0

    async def send_many(self, topic: str, messages) -> int:
        n = sum(1 for _ in messages)
        self.messages += n
        return n

    async def flush(self) -> None:
        return None


class _Source:
    def __init__(self, batches: list[list[Record]]) -> None:
        self.batches = batches

    async def next_batch(self, idle_timeout_s: float) -> list[Record]:
        return self.batches.pop(0) if self.batches else []

    async def commit(self, records) -> bool:
        return True

    async def lag(self) -> int:
        return 0


def _redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


class _Timed:
    """Wraps a callable: adds its own and Redis's CPU seconds to ``totals[name]``."""

    def __init__(self, name: str, fn, totals: dict, client: redis.Redis) -> None:
        self.name, self.fn, self.totals, self.client = name, fn, totals, client

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        own, server = time.process_time(), _redis_cpu(self.client)
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.totals[self.name][0] += time.process_time() - own
            self.totals[self.name][1] += _redis_cpu(self.client) - server


def run(customers: int, batch: int, redis_url: str, threads: int) -> dict[str, Any]:
    torch.set_num_threads(threads)
    records = load_records("credit", ROOT / "data", 0)[:customers]
    events = dataset_events(records, "credit")
    values = [
        Record("crm.events", i % 4, i, e.key, e.to_bytes(), 1_700_000_000_000 + i)
        for i, e in enumerate(events)
    ]
    batches = [values[i : i + batch] for i in range(0, len(values), batch)]
    prefix = f"bench-hot-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(redis_url)
    with tempfile.TemporaryDirectory() as tmp:
        kit = load_domain_model(
            make_checkpoint(records, Path(tmp)), "credit", torch.device("cpu"), 3
        )
    intake = EventIntake(
        CustomerSequenceStore(client, prefix, 32, 3600),
        {"credit": kit.encoder},
        64 * 1024,
        {"credit": "LIMIT_BAL"},
    )
    scoring = Scoring(
        {"credit": kit.scorer},
        Alerter(AlertPolicy(0.5, 0.1, 3600.0), {"credit": "default"}),
        AlertStateStore(client, prefix, 3600),
        LatestScoreStore(client, prefix, 3600),
    )
    pipeline = Pipeline(
        _Source(batches), intake, _NullSink(), Topics("d", "s", "a"), WorkerMetrics(), scoring
    )
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    # Stages, as the pipeline calls them (its own code between them is counted as "rest").
    intake.take = _Timed("2 intake: validate + encode + append", intake.take, totals, client)
    score = kit.scorer.score
    kit.scorer.score = _Timed("3 score: pad + forward + top events", score, totals, client)
    stage4 = pipeline._messages  # noqa: SLF001 - a benchmark timing the pipeline's own stage
    timed4 = _Timed("4 score bytes + alert decisions", stage4, totals, client)
    pipeline._messages = timed4  # noqa: SLF001
    for store in (scoring.latest_scores, scoring.alert_states):
        store.write_many = _Timed("7 state writes", store.write_many, totals, client)
    own, server, wall = time.process_time(), _redis_cpu(client), time.perf_counter()

    async def drain() -> int:
        n = 0
        while True:
            report = await pipeline.step(0.0)
            if not report.consumed:
                return n
            n += report.consumed

    consumed = asyncio.run(drain())
    own, server = time.process_time() - own, _redis_cpu(client) - server
    wall = time.perf_counter() - wall
    for key in client.scan_iter(f"{prefix}:*", count=5000):
        client.delete(key)
    staged = {k: v for k, v in totals.items()}
    staged["rest of the step (sink, metrics, bookkeeping)"] = [
        own - sum(v[0] for v in totals.values()),
        server - sum(v[1] for v in totals.values()),
    ]
    per = 1e6 / consumed
    return {
        "events": consumed,
        "batch": batch,
        "torch_threads": threads,
        "model": {
            "variant": kit.manifest.get("variant"),
            "members": kit.manifest["hyperparameters"].get("members", 1),
            "served_as": type(kit.scorer._model).__name__,  # noqa: SLF001 - fused or not
        },
        "stages_us_per_event": {
            name: {"worker_cpu": round(w * per, 2), "redis_cpu": round(r * per, 2)}
            for name, (w, r) in sorted(staged.items())
        },
        "total_us_per_event": {
            "worker_cpu": round(own * per, 2),
            "redis_cpu": round(server * per, 2),
        },
        "wall_events_per_s": round(consumed / wall),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (workers use 1)")
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/hot_path.json"))
    args = parser.parse_args(argv)
    result = run(args.customers, args.batch, args.redis, args.threads)
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
        print(f"{name:50s} worker {cost['worker_cpu']:7.1f} us  redis {cost['redis_cpu']:6.1f} us")
    total = result["total_us_per_event"]
    print(f"{'total':50s} worker {total['worker_cpu']:7.1f} us  redis {total['redis_cpu']:6.1f} us")


if __name__ == "__main__":
    main()
