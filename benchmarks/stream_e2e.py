"""End-to-end streaming benchmark (not a test): crm.events -> Redis -> model -> risk.scores.

Measured in one run, on fresh topics and keys, against the local broker and Redis:

1. bare consumers: aiokafka ``getmany`` (the client the workers use) and kafka-python ``poll``
   read the same backlog of credit events and ``json.loads`` each message (the least a worker
   must do with one; the ratio's denominator), plus the fetch-only aiokafka rate for reference;
2. sustained end to end: ``crmrisk worker ingest`` processes (1, then 2) drain the same backlog
   (parse, encode, one Lua call per batch, forward pass, scores and alerts produced, latest
   scores and alert state written, offsets committed). The backlog is published before the
   workers start; the clock starts once their consumer group is stable (so no rebalance falls
   inside it) and runs until the last score is published; the events consumed before it started
   are not counted. Each worker's peak resident memory (VmHWM) is recorded;
3. latency at half load: a paced producer (another process) sends at half the rate of (2) to a
   fresh topic; event -> score latency = score record timestamp - event record timestamp;
4. the inference worker alone, batch size 1 vs dynamic batching: requests built from real
   windows are offered open-loop at rising rates; for each mode the highest rate whose p95
   latency stays within the budget (and whose offered load is met) is its throughput at that p95.

Writes ``benchmarks/results/stream_e2e.json``. Run: ``.venv/bin/python -m benchmarks.stream_e2e``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import multiprocessing
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import orjson
import torch

from benchmarks.checkpoints import ROOT, random_checkpoint, trained_checkpoint
from crmrisk import lifecycle
from crmrisk.settings import Settings
from crmrisk.stream.kafka_producer import BatchProducer
from crmrisk.stream.replay import publish_events
from crmrisk.training.datasets.feed import dataset_events, load_records

log = logging.getLogger("benchmarks.stream_e2e")

ANCHORS = {
    "events_per_s": 20_000,
    "ratio_to_bare": 0.3,
    "p99_ms_at_half_load": 100.0,
    "alert_p99_ms_at_half_load": 500.0,
    "batching_speedup": 3.0,
}


# -- setup --------------------------------------------------------------------------------------
def make_settings(
    base: Settings,
    tag: str,
    partitions: int,
    redis: dict | None = None,
    scoring: dict | None = None,
) -> Settings:
    topics = {
        name: f"bench-{name}-{tag}"
        for name in ("events", "dead_letters", "outcomes", "scores", "alerts", "score_requests")
    }
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(**base.kafka.client_config(), client_id="bench")
    admin.create_topics([NewTopic(t, partitions, 1) for t in topics.values()])
    admin.close()
    time.sleep(2)  # leaders
    return Settings(
        kafka={
            "bootstrap_servers": base.kafka.bootstrap_servers,
            "group_id": f"bench-{tag}",
            "topics": topics,
        },
        redis={"url": base.redis.url, **(redis or {}), "key_prefix": f"bench:{tag}"},
        scoring={
            "device": "cpu",
            "metrics_port": _free_port(),
            "reasons": base.scoring.reasons,
            **(scoring or {}),
        },
    )


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(settings: Settings) -> dict[str, str]:
    k, r, s = settings.kafka, settings.redis, settings.scoring
    env = dict(os.environ)
    env.update(
        RISK_KAFKA__BOOTSTRAP_SERVERS=k.bootstrap_servers,
        RISK_KAFKA__GROUP_ID=k.group_id,
        RISK_REDIS__URL=r.url,
        RISK_REDIS__KEY_PREFIX=r.key_prefix,
        RISK_REDIS__CLUSTER=str(r.cluster).lower(),
        RISK_REDIS__WAIT_REPLICAS=str(r.wait_replicas),
        RISK_SCORING__DEVICE=s.device,
        RISK_SCORING__METRICS_PORT=str(s.metrics_port),
        RISK_SCORING__MAX_BATCH_SIZE=str(s.max_batch_size),
        RISK_SCORING__MAX_DELAY_MS=str(s.max_delay_ms),
        RISK_SCORING__REASONS=str(s.reasons),
        RISK_SCORING__ALERT_THRESHOLD=str(s.alert_threshold),
        RISK_SCORING__ALERT_HYSTERESIS=str(s.alert_hysteresis),
        RISK_SCORING__ALERT_COOLDOWN_S=str(s.alert_cooldown_s),
    )
    env["RISK_MODEL__DIR"] = str(settings.model.dir)
    for name, value in k.topics.model_dump().items():
        env[f"RISK_KAFKA__TOPICS__{name.upper()}"] = str(value)
    return env


def cleanup_keys(settings: Settings) -> None:
    from crmrisk.wiring.clients import redis_client

    client = redis_client(settings)
    for key in client.scan_iter(f"{settings.redis.key_prefix}:*", count=5000):
        client.delete(key)
    client.close()


def cleanup(settings: Settings) -> None:
    from kafka import KafkaAdminClient

    cleanup_keys(settings)
    admin = KafkaAdminClient(**settings.kafka.client_config(), client_id="bench")
    t = settings.kafka.topics
    try:  # only this run's topics, never the shared risk.model-updates
        admin.delete_topics(
            [t.events, t.dead_letters, t.outcomes, t.scores, t.alerts, t.score_requests]
        )
    except Exception as exc:
        log.warning("could not delete topics: %s", exc)
    admin.close()


async def _publish(settings: Settings, pairs, rate: float | None, chunk: int = 250) -> float:
    # As `crmrisk replay`: paced chunks leave at once, a flat-out backlog lingers to fill batches.
    producer = BatchProducer(
        settings.kafka.client_config(), "bench-producer", linger_ms=0 if rate else 5
    )
    await producer.start()
    try:
        return await publish_events(producer, settings.kafka.topics.events, pairs, rate, chunk)
    finally:
        await producer.stop()


def _publish_process(settings_json: str, pairs, rate: float | None) -> None:
    settings = Settings.model_validate_json(settings_json)
    # Paced: small chunks, not bursts of hundreds of events stamped at the same instant.
    # Flat out (a backlog): large chunks, as fast as the producer goes.
    chunk = max(1, int(rate / 200)) if rate else 250
    asyncio.run(_publish(settings, pairs, rate, chunk=chunk))


# -- 1. bare consumers --------------------------------------------------------------------------
async def bare_aiokafka(settings: Settings, expected: int, decode: bool = True) -> float:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        settings.kafka.topics.events,
        bootstrap_servers=settings.kafka.bootstrap_servers,
        group_id=f"bare-aio-{uuid.uuid4().hex[:6]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    try:
        n, started = 0, None
        while n < expected:
            polled = await consumer.getmany(timeout_ms=1000, max_records=2000)
            if polled and started is None:
                started = time.perf_counter()
            for records in polled.values():
                if decode:
                    for record in records:
                        json.loads(record.value)
                n += len(records)
        return n / (time.perf_counter() - started)
    finally:
        await consumer.stop()


def bare_kafka_python(settings: Settings, expected: int) -> float:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        settings.kafka.topics.events,
        bootstrap_servers=settings.kafka.bootstrap_servers.split(","),
        group_id=f"bare-kp-{uuid.uuid4().hex[:6]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=2000,
    )
    try:
        n, started = 0, None
        while n < expected:
            polled = consumer.poll(timeout_ms=1000, max_records=2000)
            if polled and started is None:
                started = time.perf_counter()
            for records in polled.values():
                for record in records:
                    json.loads(record.value)
                n += len(records)
        return n / (time.perf_counter() - started)
    finally:
        consumer.close()


def bare_faust(settings: Settings, expected: int) -> float:
    """faust-streaming's agent with ``stream.take(2000, within=5 ms)`` on the same backlog, in a
    child process (faust owns its event loop and command line)."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.stream_e2e",
            "--faust-consumer",
            settings.kafka.topics.events,
            str(expected),
            settings.kafka.bootstrap_servers,
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    for line in (out.stdout + out.stderr).splitlines():
        if "FAUST_RATE" in line:
            return float(line.split("FAUST_RATE", 1)[1].split()[0])
    raise RuntimeError(f"faust consumer failed: {out.stderr[-2000:]}")


def _faust_consumer(topic_name: str, expected: int, bootstrap: str) -> None:
    import faust

    workdir = tempfile.mkdtemp(prefix="bench-faust-")
    app = faust.App(
        f"bench-faust-{uuid.uuid4().hex[:6]}",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        web_enabled=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        datadir=workdir,
    )
    topic = app.topic(topic_name, value_type=bytes, value_serializer="raw")
    seen = {"n": 0, "t0": 0.0}

    @app.agent(topic)
    async def count(stream):
        async for values in stream.take(2000, within=0.005):
            if not seen["n"]:
                seen["t0"] = time.perf_counter()
            seen["n"] += len(values)
            if seen["n"] >= expected:
                rate = seen["n"] / (time.perf_counter() - seen["t0"])
                print(f"FAUST_RATE {rate:.0f}", flush=True)
                os._exit(0)

    sys.argv = ["bench-faust", "worker", "-l", "warn"]
    app.main()


# -- 2./3. the worker process -------------------------------------------------------------------
def _metric(port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


class Worker:
    """``crmrisk worker ingest`` serving ``checkpoint``, or with ``checkpoint=None`` the live
    version of the registry at ``settings.model.dir`` (``--follow-pointer``: trials too)."""

    def __init__(self, settings: Settings, checkpoint: Path | None, log_path: Path) -> None:
        self.settings = settings
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        command = [sys.executable, "-m", "crmrisk", "worker", "ingest", "--domain", "credit"]
        command += ["--follow-pointer"] if checkpoint is None else ["--model", str(checkpoint)]
        self.process = subprocess.Popen(
            command, env=_env(settings), stdout=self._log, stderr=self._log
        )
        self.port = settings.scoring.metrics_port
        deadline = time.monotonic() + 120
        while True:
            try:
                _metric(self.port, "crmrisk_events_in_total")
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"worker did not start; see {log_path}") from None
                time.sleep(0.2)

    def peak_rss_mb(self) -> float | None:
        """The process's peak resident set (VmHWM), in MiB."""
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def rss_mb(self) -> float | None:
        """The process's resident set now (VmRSS), in MiB."""
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def counts(self) -> tuple[float, float]:
        return (
            _metric(self.port, "crmrisk_events_in_total"),
            _metric(self.port, "crmrisk_scores_total"),
        )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log.close()


def drain(
    workers: list[Worker],
    expected_events: int,
    expected_scores: int,
    timeout_s: float,
    started: float,
    consumed_before: float,
) -> dict:
    """Events/s from ``started`` (the clock) until every expected score is published; the
    ``consumed_before`` events consumed before the clock started are not counted."""
    done = None
    deadline = time.monotonic() + timeout_s
    events_in = scores = 0.0
    while time.monotonic() < deadline:
        counts = [w.counts() for w in workers]
        events_in, scores = sum(c[0] for c in counts), sum(c[1] for c in counts)
        if events_in >= expected_events and scores >= expected_scores:
            done = time.perf_counter()
            break
        time.sleep(0.05)
    if done is None:
        raise RuntimeError(
            f"workers consumed {events_in:.0f}/{expected_events} events and published "
            f"{scores:.0f}/{expected_scores} scores in {timeout_s} s"
        )
    counted = expected_events - consumed_before
    return {
        "workers": len(workers),
        "events": expected_events,
        "events_counted": counted,
        "events_consumed": events_in,
        "scores": scores,
        "seconds": done - started,
        "events_per_s": counted / (done - started),
        "peak_rss_mb": [w.peak_rss_mb() for w in workers],
    }


def wait_group_stable(settings: Settings, members: int, timeout_s: float = 120.0) -> float:
    """Seconds until the ingest group is Stable with ``members`` members, each assigned."""
    from kafka import KafkaAdminClient

    group = f"{settings.kafka.group_id}-ingest"
    admin = KafkaAdminClient(**settings.kafka.client_config(), client_id="bench")
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < timeout_s:
            info = admin.describe_groups([group]).get(group) or {}
            if info.get("group_state") == "Stable" and len(info.get("members") or []) == members:
                return time.monotonic() - t0
            time.sleep(0.25)
    finally:
        admin.close()
    raise RuntimeError(f"group {group} not stable with {members} members in {timeout_s} s")


def run_backlog(
    base: Settings,
    partitions: int,
    checkpoint: Path,
    n_workers: int,
    pairs,
    scores: int,
    workdir: Path,
    redis: dict | None = None,
    scoring: dict | None = None,
) -> dict:
    """``n_workers`` processes of one consumer group drain a backlog on fresh topics and keys
    (``redis``: settings of the Redis section to use instead of the base's, e.g. a cluster;
    ``scoring``: overrides of the scoring section, e.g. the alert threshold).

    The backlog is published first, in full, so no publisher shares the cores with the workers;
    then the workers start. The clock starts once the group is stable (a rebalance is a pause of
    seconds and redelivers batches) and runs until the last score is published; what the
    workers consumed before it started is not counted.
    """
    tag = uuid.uuid4().hex[:8]
    s = make_settings(base, tag, partitions, redis, scoring)
    workers: list[Worker] = []
    try:
        publisher = multiprocessing.get_context("spawn").Process(
            target=_publish_process, args=(s.model_dump_json(), pairs, None)
        )
        publisher.start()
        publisher.join()
        workers = start_workers(s, checkpoint, n_workers, workdir, tag)
        settle_s = wait_group_stable(s, n_workers)
        started = time.perf_counter()
        before = sum(w.counts()[0] for w in workers)
        result = drain(workers, len(pairs), scores, 900, started, before)
        alerts = sum(_metric(w.port, "crmrisk_alerts_total") for w in workers)
        return result | {"group_settled_after_s": round(settle_s, 1), "alerts": alerts}
    finally:
        for w in workers:
            w.stop()
        cleanup(s)


def start_workers(
    s: Settings, checkpoint: Path | None, n: int, workdir: Path, tag: str
) -> list[Worker]:
    """``n`` worker processes of one consumer group, each with its own metrics port."""
    workers: list[Worker] = []
    for i in range(n):
        one = Settings(
            kafka=s.kafka.model_dump(),
            redis=s.redis.model_dump(),
            scoring=s.scoring.model_dump() | {"metrics_port": _free_port()},
            model=s.model.model_dump(),
        )
        workers.append(Worker(one, checkpoint, workdir / f"worker-{tag}-{i}.log"))
    return workers


async def read_topic(
    settings: Settings, topic: str, until: int | None, timeout_s: float, idle_s: float = 5.0
) -> list:
    """Every record of ``topic`` (until ``until`` of them, or ``idle_s`` without a new one)."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka.bootstrap_servers,
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    out: list = []
    deadline = time.monotonic() + timeout_s
    last_new = time.monotonic()
    try:
        while time.monotonic() < deadline and (until is None or len(out) < until):
            polled = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for recs in polled.values():
                out.extend(recs)
                last_new = time.monotonic()
            if until is None and time.monotonic() - last_new > idle_s:
                break
    finally:
        await consumer.stop()
    return out


async def latencies(
    settings: Settings, expected_scores: int, sent_events: int, timeout_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """(inbound event timestamp, score or alert timestamp - it) in ms, matched by event id."""
    k = settings.kafka.topics
    scores = await read_topic(settings, k.scores, expected_scores, timeout_s)
    events = await read_topic(settings, k.events, sent_events, timeout_s)
    alerts = await read_topic(settings, k.alerts, None, timeout_s)
    sent = {json.loads(r.value)["event_id"]: r.timestamp for r in events}

    def lag(records) -> np.ndarray:
        ids = ((r, json.loads(r.value)["event_id"]) for r in records)
        pairs = [(sent[e], r.timestamp - sent[e]) for r, e in ids if e in sent]
        return np.asarray(pairs, dtype=np.float64).reshape(-1, 2)

    return lag(scores), lag(alerts)


# -- 4. inference alone: batch size 1 vs dynamic batching -----------------------------------------
def inference_requests(checkpoint: Path, events, count: int):
    """Score requests carrying real windows (encoded as ingest would), one per statement."""
    from crmrisk.model.features import FeatureEncoder
    from crmrisk.state import CustomerSequence
    from crmrisk.stream.requests import ScoreRequest
    from crmrisk.stream.transform import event_time_ms, window

    _, manifest = lifecycle.load_checkpoint(checkpoint)
    encoder = FeatureEncoder.from_dict(manifest["encoder"])
    history, profiles, requests = {}, {}, []
    for e in events:
        if e.kind == "profile":
            profiles[e.customer_id] = encoder.encode_profile(e.fields)
            continue
        seen = history.setdefault(e.customer_id, [])
        seen.append(e)
        w = window(seen, 32)
        seq = CustomerSequence(
            event_ids=[x.event_id for x in w],
            event_times_ms=np.array([event_time_ms(x) for x in w], dtype=np.int64),
            kinds=[x.kind for x in w],
            events=np.stack([encoder.encode_event(x.kind, x.fields) for x in w]),
            profile=profiles.get(e.customer_id),
        )
        requests.append(ScoreRequest(e.customer_id, "credit", e.event_id, event_time_ms(e), 0, seq))
        if len(requests) >= count:
            break
    return requests


async def offered_load(
    scorer, requests, rate: float, seconds: float, max_batch: int, max_delay_ms: float
) -> dict:
    """Poisson arrivals at ``rate``/s into a queue; a DynamicBatcher feeds the scorer."""
    from crmrisk.stream.batching import DynamicBatcher
    from crmrisk.stream.score_encoding import iso_ms, score_bytes

    queue: asyncio.Queue = asyncio.Queue()
    total = int(rate * seconds)
    rng = random.Random(0)
    done_lat: list[float] = []

    async def source(timeout_s: float, n: int) -> list:
        items = []
        try:
            items.append(await asyncio.wait_for(queue.get(), timeout=max(timeout_s, 1e-4)))
        except TimeoutError:
            return items
        while len(items) < n and not queue.empty():
            items.append(queue.get_nowait())
        return items

    produced = {}

    async def produce() -> None:
        start = time.perf_counter()
        t = 0.0
        for i in range(total):
            t += rng.expovariate(rate)
            delay = start + t - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            queue.put_nowait((time.perf_counter(), requests[i % len(requests)]))
        produced["seconds"] = time.perf_counter() - start

    async def consume() -> None:
        batcher = DynamicBatcher(source, max_batch, max_delay_ms)
        served = 0
        while served < total:
            batch = await batcher.next_batch(1.0)
            if not batch:
                continue
            scored = scorer.score([r for _, r in batch])
            now = iso_ms(int(time.time() * 1000))
            for s in scored:  # the same serialisation the worker does
                score_bytes(
                    customer_id=s.request.customer_id,
                    domain="credit",
                    event_id=s.request.event_id,
                    event_time_ms=s.request.event_time_ms,
                    probability=s.probability,
                    quantiles=None,
                    model_version="bench",
                    scored_at=now,
                    top_events=s.top_events,
                )
            end = time.perf_counter()
            done_lat.extend((end - t0) * 1000 for t0, _ in batch)
            served += len(batch)
            await asyncio.sleep(0)

    started = time.perf_counter()
    await asyncio.gather(produce(), consume())
    took = time.perf_counter() - started
    lat = np.asarray(done_lat)
    return {
        "offered_per_s": rate,
        "arrived_per_s": total / produced["seconds"],  # the Poisson draw's actual rate
        "served_per_s": total / took,
        "p50_ms": float(np.percentile(lat, 50)),
        "p95_ms": float(np.percentile(lat, 95)),
        "p99_ms": float(np.percentile(lat, 99)),
    }


def batching_sweep(scorer, requests, budget_ms: float, seconds: float) -> dict:
    """Highest sustained rate with p95 <= budget for batch size 1 and for dynamic batching."""
    out = {}
    for name, max_batch, delay in (("batch_size_1", 1, 0.0), ("dynamic", 512, 5.0)):
        rate, best, runs = 25.0, None, []
        while rate < 400_000:
            run = asyncio.run(offered_load(scorer, requests, rate, seconds, max_batch, delay))
            runs.append(run)
            log.info(
                "%s offered %.0f/s: served %.0f/s, p95 %.1f ms",
                name,
                rate,
                run["served_per_s"],
                run["p95_ms"],
            )
            # Served below 90% of offered: the queue grows without bound (saturated).
            if run["p95_ms"] > budget_ms or run["served_per_s"] < 0.9 * run["arrived_per_s"]:
                break
            best = run
            rate *= 1.5
        out[name] = {"max_rate_within_budget": best, "runs": runs}
    b1 = out["batch_size_1"]["max_rate_within_budget"]
    dyn = out["dynamic"]["max_rate_within_budget"]
    out["speedup_at_equal_p95"] = dyn["served_per_s"] / b1["served_per_s"] if b1 and dyn else None
    out["p95_budget_ms"] = budget_ms
    return out


def _percentiles(values: np.ndarray) -> dict:
    if not values.size:
        return {"count": 0}
    return {
        "count": int(values.size),
        "p50_ms": float(np.percentile(values, 50)),
        "p95_ms": float(np.percentile(values, 95)),
        "p99_ms": float(np.percentile(values, 99)),
        "max_ms": float(values.max()),
    }


def _timeline(lat: np.ndarray) -> list[dict]:
    """Score latency per second of sending: whether the tail is a warm-up, spikes or steady."""
    if not len(lat):
        return []
    second = ((lat[:, 0] - lat[:, 0].min()) // 1000).astype(int)
    return [
        {"second": int(t), "count": int((second == t).sum()),
         "p50_ms": float(np.percentile(lat[second == t, 1], 50)),
         "p99_ms": float(np.percentile(lat[second == t, 1], 99))}
        for t in np.unique(second)
    ]  # fmt: skip


def measure_stream(
    args, base: Settings, events, pairs, checkpoint: Path, workdir: Path, result: dict
) -> None:
    """Parts 1-3: bare consumers, sustained end to end (and the alert storm), half load."""
    scored = sum(e.kind != "profile" for e in events)
    # 1 + 2: backlog, bare consumers, then the workers draining it.
    tag = uuid.uuid4().hex[:8]
    s = make_settings(base, tag, args.partitions)
    try:
        asyncio.run(_publish(s, pairs, None))
        result["bare_aiokafka_per_s"] = asyncio.run(bare_aiokafka(s, len(pairs)))
        result["bare_aiokafka_fetch_only_per_s"] = asyncio.run(
            bare_aiokafka(s, len(pairs), decode=False)
        )
        result["bare_kafka_python_per_s"] = bare_kafka_python(s, len(pairs))
        if args.faust:
            result["bare_faust_take_per_s"] = bare_faust(s, len(pairs))
        log.info(
            "bare (read + json.loads): aiokafka %.0f/s (fetch only %.0f/s), kafka-python %.0f/s",
            result["bare_aiokafka_per_s"],
            result["bare_aiokafka_fetch_only_per_s"],
            result["bare_kafka_python_per_s"],
        )
    finally:
        cleanup(s)
    runs = []
    for n in args.workers:
        repeats = args.repeats if n == max(args.workers) else 1
        for _ in range(repeats):
            run = run_backlog(base, args.partitions, checkpoint, n, pairs, scored, workdir)
            log.info("end to end, %d worker(s): %.0f events/s, %d alerts", run["workers"],
                     run["events_per_s"], run["alerts"])  # fmt: skip
            runs.append(run)
    result["end_to_end_runs"] = runs
    best = [r for r in runs if r["workers"] == max(args.workers)]
    rates = sorted(r["events_per_s"] for r in best)
    result["end_to_end"] = sorted(best, key=lambda r: r["events_per_s"])[len(best) // 2]
    result["end_to_end_spread"] = {"runs": len(rates), "min": rates[0], "max": rates[-1]}
    rate = result["end_to_end"]["events_per_s"]
    result["ratio_to_bare_aiokafka"] = rate / result["bare_aiokafka_per_s"]
    log.info("end to end (median of %d): %.0f events/s (%.3f of bare)", len(rates), rate,
             result["ratio_to_bare_aiokafka"])  # fmt: skip
    if args.storm:  # every customer alerts on its first score: the most the policy fires
        storm = run_backlog(base, args.partitions, checkpoint, max(args.workers), pairs, scored,
                            workdir, scoring={"alert_threshold": 0.0})  # fmt: skip
        log.info("alert storm: %.0f events/s, %d alerts", storm["events_per_s"], storm["alerts"])
        result["alert_storm"] = storm

    # 3: half load, paced from another process.
    half = rate / 2
    count = min(len(pairs), int(half * args.half_load_seconds))
    tag = uuid.uuid4().hex[:8]
    s = make_settings(base, tag, args.partitions)
    try:
        n_workers = result["end_to_end"]["workers"]
        workers = start_workers(s, checkpoint, n_workers, workdir, "half")
        try:
            wait_group_stable(s, n_workers)  # no rebalance inside the measurement
            producer = multiprocessing.get_context("spawn").Process(
                target=_publish_process, args=(s.model_dump_json(), pairs[:count], half)
            )
            producer.start()
            producer.join()
            expected = sum(1 for e in events[:count] if e.kind != "profile")
            lat, alert_lat = asyncio.run(latencies(s, expected, count, timeout_s=180))
            peak = [w.peak_rss_mb() for w in workers]
        finally:
            for w in workers:
                w.stop()
        result["half_load"] = {
            "workers": n_workers,
            "offered_per_s": half,
            "events": count,
            "scores_matched": len(lat),
            **_percentiles(lat[:, 1]),
            "alerts": _percentiles(alert_lat[:, 1]),
            "alert_p99_ms": float(np.percentile(alert_lat[:, 1], 99)) if len(alert_lat) else None,
            "peak_rss_mb": peak,
            "per_second": _timeline(lat),
        }
        log.info("half load %.0f/s: score p50 %.1f ms, p99 %.1f ms; alert p99 %s ms", half,
                 result["half_load"]["p50_ms"], result["half_load"]["p99_ms"],
                 result["half_load"]["alert_p99_ms"])  # fmt: skip
    finally:
        cleanup(s)


# -- 5. soak: memory over a long paced run -------------------------------------------------------
def _passes(pairs, passes: int):
    """The feed ``passes`` times: the same customers with new statements each time (event ids
    suffixed, times moved on by 200 days a pass; profiles once), so windows roll over."""
    yield from pairs
    for k in range(1, passes):
        for key, value in pairs:
            doc = orjson.loads(value)
            if doc["kind"] == "profile":
                continue
            doc["event_id"] = f"{doc['event_id']}~{k}"
            when = datetime.fromisoformat(doc["event_time"]) + timedelta(days=200 * k)
            doc["event_time"] = when.isoformat()
            yield key, orjson.dumps(doc)


def _soak_publisher(settings_json: str, pairs, rate: float, seconds: float) -> None:
    settings = Settings.model_validate_json(settings_json)
    count = int(rate * seconds)
    passes = count // len(pairs) + 2
    feed = itertools.islice(_passes(pairs, passes), count)
    asyncio.run(_publish_stream(settings, feed, rate))


async def _publish_stream(settings: Settings, feed, rate: float, part: int = 20_000) -> None:
    """A paced feed too long to hold in memory, ``part`` events at a time, one producer.
    (``publish_events`` takes a sequence: an iterator once crashed the soak's publisher.)"""
    producer = BatchProducer(settings.kafka.client_config(), "bench-soak", linger_ms=0)
    await producer.start()
    try:
        while events := list(itertools.islice(feed, part)):
            await publish_events(
                producer, settings.kafka.topics.events, events, rate, max(1, int(rate / 200))
            )
    finally:
        await producer.stop()


def soak(base: Settings, args, pairs, checkpoint: Path, workdir: Path, rate: float, n: int) -> dict:
    """``n`` workers under a paced load of ``rate`` events/s for ``args.soak_seconds``: their
    resident memory every 10 s, and their own event -> score latency histogram at the end."""
    s = make_settings(base, uuid.uuid4().hex[:8], args.partitions)
    try:
        workers = start_workers(s, checkpoint, n, workdir, "soak")
        samples: list[list] = []
        try:
            wait_group_stable(s, n)
            producer = multiprocessing.get_context("spawn").Process(
                target=_soak_publisher, args=(s.model_dump_json(), pairs, rate, args.soak_seconds)
            )
            started = time.monotonic()
            producer.start()
            while producer.is_alive():
                samples.append([round(time.monotonic() - started), *(w.rss_mb() for w in workers)])
                producer.join(10.0)
            time.sleep(5)
            samples.append([round(time.monotonic() - started), *(w.rss_mb() for w in workers)])
            counts = [w.counts() for w in workers]
            buckets = _histogram(workers, "crmrisk_event_to_score_ms")
        finally:
            for w in workers:
                w.stop()
    finally:
        cleanup(s)
    minute = [row for row in samples if row[0] >= 60]
    first = minute[0] if minute else samples[0]
    return {
        "workers": n,
        "offered_per_s": rate,
        "seconds": args.soak_seconds,
        "events_in": sum(c[0] for c in counts),
        "scores": sum(c[1] for c in counts),
        "rss_mb_samples": samples,
        "rss_growth_mb_after_first_minute": [
            round(last - start, 1)
            for last, start in zip(samples[-1][1:], first[1:], strict=True)
            if last is not None and start is not None
        ],
        "latency_histogram_ms": buckets,
        "latency_p99_bucket_ms": _quantile_bucket(buckets, 0.99),
    }


def _histogram(workers, name: str) -> dict[str, float]:
    """The workers' histogram ``name`` summed: cumulative count per ``le`` bound."""
    total: dict[str, float] = {}
    for w in workers:
        text = urllib.request.urlopen(f"http://127.0.0.1:{w.port}/metrics", timeout=5).read()
        for line in text.decode().splitlines():
            if line.startswith(f"{name}_bucket"):
                le = line.split('le="')[1].split('"')[0]
                total[le] = total.get(le, 0.0) + float(line.rsplit(" ", 1)[1])
    return total


def _quantile_bucket(buckets: dict[str, float], q: float) -> str | None:
    """The smallest bucket bound holding at least ``q`` of the observations."""
    if not buckets or not buckets.get("+Inf"):
        return None
    need = q * buckets["+Inf"]
    for le, count in buckets.items():
        if count >= need:
            return le
    return "+Inf"


# -- main ---------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--customers", type=int, default=15_000, help="credit customers (x7 events)"
    )
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument(
        "--workers",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[1, 2],
        help="worker process counts to drain the backlog with, e.g. 1,2",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs of the largest worker count (median, spread)"
    )
    parser.add_argument("--half-load-seconds", type=float, default=20.0)
    parser.add_argument(
        "--soak-seconds", type=float, default=0.0, help="soak at half load this long (e.g. 600)"
    )
    parser.add_argument("--storm", action=argparse.BooleanOptionalAction, default=True,
                        help="also drain the backlog with every customer alerting")  # fmt: skip
    parser.add_argument("--faust", action="store_true", help="also time a bare faust agent")
    parser.add_argument("--random", action="store_true", help="random weights, not trained")
    parser.add_argument(
        "--reasons", type=int, default=None, help="reason codes per alert (default: settings')"
    )
    parser.add_argument("--p95-budget-ms", type=float, default=50.0)
    parser.add_argument("--sweep-seconds", type=float, default=3.0)
    parser.add_argument(
        "--only-batching",
        action="store_true",
        help="re-run only part 4 and update it in --out",
    )
    parser.add_argument(
        "--only-soak",
        action="store_true",
        help="re-run only the soak (--soak-seconds) at half the end-to-end rate in --out",
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "stream_e2e.json"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for noisy in ("kafka", "aiokafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    torch.set_num_threads(1)

    base = Settings()
    if args.reasons is not None:
        base = base.model_copy(
            update={"scoring": base.scoring.model_copy(update={"reasons": args.reasons})}
        )
    records = load_records("credit", ROOT / "data", 0)[: args.customers]
    events = dataset_events(records, "credit")
    pairs = [(e.key, e.to_bytes()) for e in events]
    scored = sum(e.kind != "profile" for e in events)
    workdir = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    checkpoint = random_checkpoint(workdir) if args.random else trained_checkpoint()
    result: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "loadavg_at_start": os.getloadavg(),
        },
        "events": len(events),
        "scored_events": scored,
        "anchors": ANCHORS,
        "model": "random weights" if args.random else f"trained credit ({checkpoint})",
        "reasons_per_alert": base.scoring.reasons,
        "reason_steps": base.scoring.reason_steps,
    }

    if args.only_soak:  # keep everything else of the last full run
        if not args.soak_seconds:
            parser.error("--only-soak needs --soak-seconds")
        result = json.loads(args.out.read_text())
        e2e = result["end_to_end"]
        result["soak"] = soak(base, args, pairs, checkpoint, workdir,
                              e2e["events_per_s"] / 2, e2e["workers"])  # fmt: skip
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        return result
    if args.only_batching:  # keep parts 1-3 of the last full run
        result = json.loads(args.out.read_text()) | {"events": len(events), "scored_events": scored}
    else:
        measure_stream(args, base, events, pairs, checkpoint, workdir, result)
    if args.soak_seconds:
        e2e = result["end_to_end"]
        result["soak"] = soak(base, args, pairs, checkpoint, workdir,
                              e2e["events_per_s"] / 2, e2e["workers"])  # fmt: skip
        log.info("soak: rss growth after the first minute %s MiB",
                 result["soak"]["rss_growth_mb_after_first_minute"])  # fmt: skip

    # 4: inference alone.
    from crmrisk.stream.models import load_domain_model

    kit = load_domain_model(checkpoint, "credit", torch.device("cpu"), top_events=3)
    requests = inference_requests(checkpoint, events, 20_000)
    result["inference_batching"] = batching_sweep(
        kit.scorer, requests, args.p95_budget_ms, args.sweep_seconds
    )
    log.info(
        "batching speedup at p95 <= %.0f ms: %s",
        args.p95_budget_ms,
        result["inference_batching"]["speedup_at_equal_p95"],
    )

    result["machine"]["loadavg_at_end"] = os.getloadavg()
    e2e, hl, ib = result["end_to_end"], result["half_load"], result["inference_batching"]
    result["verdict"] = {
        "events_per_s": {
            "value": e2e["events_per_s"],
            "bar": ANCHORS["events_per_s"],
            "met": e2e["events_per_s"] >= ANCHORS["events_per_s"],
        },
        "ratio_to_bare": {
            "value": result["ratio_to_bare_aiokafka"],
            "bar": ANCHORS["ratio_to_bare"],
            "met": result["ratio_to_bare_aiokafka"] >= ANCHORS["ratio_to_bare"],
        },
        "p99_ms_at_half_load": {
            "value": hl["p99_ms"],
            "bar": ANCHORS["p99_ms_at_half_load"],
            "met": hl["p99_ms"] < ANCHORS["p99_ms_at_half_load"],
        },
        "alert_p99_ms_at_half_load": {
            "value": hl["alert_p99_ms"],
            "bar": ANCHORS["alert_p99_ms_at_half_load"],
            "met": hl["alert_p99_ms"] is not None
            and hl["alert_p99_ms"] < ANCHORS["alert_p99_ms_at_half_load"],
        },
        "batching_speedup": {
            "value": ib["speedup_at_equal_p95"],
            "bar": ANCHORS["batching_speedup"],
            "met": (ib["speedup_at_equal_p95"] or 0) >= ANCHORS["batching_speedup"],
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    log.info("wrote %s", args.out)
    return result


def _services_or_exit(settings: Settings) -> None:
    """One line naming what to start when Kafka or Redis does not answer (not a traceback)."""
    from crmrisk.errors import describe, require_services

    try:
        require_services(settings)
    except Exception as exc:
        message = describe(exc)
        if message is None:
            raise
        print(f"Error: {message}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--faust-consumer":
        _faust_consumer(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        _services_or_exit(Settings())
        main()
