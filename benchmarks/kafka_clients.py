"""The three Python Kafka clients side by side: consume + JSON-decode, and produce.

For each client, in one run against the local broker, on one topic holding the same backlog of
credit events (``--messages``, 4 partitions):

- consume: read every message and ``json.loads`` its value, as a worker must at least do;
- produce: send the same number of ~400-byte values (keyed, acks=all, idempotent) and wait for
  every acknowledgement.

Reported per client: messages/s (wall) and microseconds of this process's CPU per message
(user + system, ``resource.getrusage``): the CPU figure is what a 2-core machine shared with
the broker and Redis pays, and it moves less than wall time when other work runs. Writes
``benchmarks/results/kafka_clients.json``. Run: ``.venv/bin/python -m benchmarks.kafka_clients``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["main"]


def _cpu() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def _measure(run: Callable[[], int]) -> dict[str, float]:
    cpu, wall = _cpu(), time.perf_counter()
    n = run()
    cpu, wall = _cpu() - cpu, time.perf_counter() - wall
    return {"messages": n, "per_s": n / wall, "cpu_us_per_message": 1e6 * cpu / n}


def _values(n: int) -> list[tuple[bytes, bytes]]:
    out = []
    for i in range(n):
        cid = f"c{i % 5000}"
        doc = {
            "event_id": f"{cid}-{i}",
            "customer_id": cid,
            "event_time": "2005-09-30T00:00:00Z",
            "domain": "credit",
            "kind": "statement",
            "fields": {"pay_status": i % 4, "bill_amt": 1234.5 + i, "pay_amt": 200.0,
                       "bill_to_limit": 0.37},
        }  # fmt: skip
        out.append((cid.encode(), json.dumps(doc).encode()))
    return out


def _create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)
    time.sleep(1)


# -- produce -------------------------------------------------------------------------------------
def produce_confluent(bootstrap: str, topic: str, values: list) -> int:
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "batch.size": 1 << 20,
        }
    )
    for key, value in values:
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    if producer.flush(60) != 0:
        raise RuntimeError("confluent-kafka: messages left unacknowledged")
    return len(values)


def produce_aiokafka(bootstrap: str, topic: str, values: list) -> int:
    from crmrisk.stream.kafka_producer import (
        BatchProducer,  # the project's batched aiokafka producer
    )

    async def run() -> int:
        producer = BatchProducer({"bootstrap_servers": bootstrap}, "bench-aio", linger_ms=5)
        await producer.start()
        try:
            for start in range(0, len(values), 500):
                await producer.send_many(topic, values[start : start + 500])
            await producer.flush()
        finally:
            await producer.stop()
        return len(values)

    return asyncio.run(run())


def produce_kafka_python(bootstrap: str, topic: str, values: list) -> int:
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap.split(","), acks="all", enable_idempotence=True, linger_ms=5,
        batch_size=1 << 20,
    )  # fmt: skip
    for key, value in values:
        producer.send(topic, value, key)
    producer.flush(60)
    producer.close()
    return len(values)


# -- consume + decode ----------------------------------------------------------------------------
def consume_confluent(bootstrap: str, topic: str, expected: int) -> int:
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-ck-{uuid.uuid4().hex[:6]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    n = 0
    try:
        while n < expected:
            for message in consumer.consume(2000, 1.0):
                if message.error() is None:
                    json.loads(message.value())
                    n += 1
    finally:
        consumer.close()
    return n


def consume_aiokafka(bootstrap: str, topic: str, expected: int) -> int:
    from aiokafka import AIOKafkaConsumer

    async def run() -> int:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=f"bench-aio-{uuid.uuid4().hex[:6]}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        await consumer.start()
        n = 0
        try:
            while n < expected:
                polled = await consumer.getmany(timeout_ms=1000, max_records=2000)
                for records in polled.values():
                    for record in records:
                        json.loads(record.value)
                        n += 1
        finally:
            await consumer.stop()
        return n

    return asyncio.run(run())


def consume_kafka_python(bootstrap: str, topic: str, expected: int) -> int:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap.split(","),
        group_id=f"bench-kp-{uuid.uuid4().hex[:6]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=2000,
    )
    n = 0
    try:
        while n < expected:
            for records in consumer.poll(timeout_ms=1000, max_records=2000).values():
                for record in records:
                    json.loads(record.value)
                    n += 1
    finally:
        consumer.close()
    return n


CLIENTS = {
    "confluent-kafka": (produce_confluent, consume_confluent),
    "aiokafka": (produce_aiokafka, consume_aiokafka),
    "kafka-python": (produce_kafka_python, consume_kafka_python),
}


def run(bootstrap: str, messages: int, partitions: int) -> dict[str, Any]:
    values = _values(messages)
    tag = uuid.uuid4().hex[:8]
    source = f"bench-clients-{tag}"
    _create_topic(bootstrap, source, partitions)
    produce_confluent(bootstrap, source, values)  # the shared backlog
    results: dict[str, Any] = {}
    for name, (produce, consume) in CLIENTS.items():
        target = f"bench-clients-{tag}-{name}"
        _create_topic(bootstrap, target, partitions)
        results[name] = {
            "consume_and_decode": _measure(lambda c=consume: c(bootstrap, source, messages)),
            "produce": _measure(lambda p=produce, t=target: p(bootstrap, t, values)),
        }
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS",
                                                              "127.0.0.1:9092"))  # fmt: skip
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/kafka_clients.json"))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    result = {
        "clients": run(args.bootstrap, args.messages, args.partitions),
        "messages": args.messages,
        "partitions": args.partitions,
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_end": os.getloadavg(),
        },
        "wall_seconds": round(time.perf_counter() - started, 1),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for name, r in result["clients"].items():
        c, p = r["consume_and_decode"], r["produce"]
        print(f"{name:16s} consume+decode {c['per_s']:>9,.0f}/s {c['cpu_us_per_message']:5.1f} us"
              f" | produce {p['per_s']:>9,.0f}/s {p['cpu_us_per_message']:5.1f} us")  # fmt: skip


if __name__ == "__main__":
    main()
