"""Publish a dataset's events to Kafka in event-time order, at a target rate, keyed by customer.

Used by ``crmrisk replay``, the demo, the integration tests and the benchmark (through
``crmrisk/wiring/replay.py``, which builds the producer from settings and shows a progress bar).
Events go out in chunks through the batch producer; the pacer sleeps so that, after each
chunk, no more than ``rate x elapsed`` events have been sent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence

from crmrisk.stream.events import CustomerEvent, Outcome
from crmrisk.stream.kafka_producer import BatchProducer, FastProducer

__all__ = ["publish_events", "publish_outcomes"]


async def publish_events(
    producer: BatchProducer | FastProducer,
    topic: str,
    events: Sequence[CustomerEvent] | Sequence[tuple[bytes, bytes]],
    rate: float | None = None,
    chunk: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> float:
    """Send ``events`` (models, or ready (key, value) pairs) at up to ``rate`` per second.

    ``chunk`` events go out together; by default 500 flat out, and 5 ms worth when paced, so
    a paced feed is smooth rather than bursts stamped at the same instant (which would show up
    as queueing latency downstream). Returns the seconds it took, acknowledgements included.
    """
    if chunk is None:
        chunk = max(1, min(500, int(rate / 200))) if rate else 500
    started = time.perf_counter()
    sent = 0
    for i in range(0, len(events), chunk):
        part = events[i : i + chunk]
        pairs = [e if isinstance(e, tuple) else (e.key, e.to_bytes()) for e in part]
        await producer.send_many(topic, pairs)
        sent += len(pairs)
        if rate:
            ahead_s = sent / rate - (time.perf_counter() - started)
            if ahead_s > 0:
                await asyncio.sleep(ahead_s)  # the producer's sender runs meanwhile
        else:
            await asyncio.sleep(0)  # let the producer's sender task run
        if on_progress is not None:
            on_progress(len(pairs))
    await producer.flush()
    return time.perf_counter() - started


async def publish_outcomes(
    producer: BatchProducer | FastProducer, topic: str, outcomes: Iterable[Outcome]
) -> int:
    count = await producer.send_many(topic, ((o.key, o.to_bytes()) for o in outcomes))
    await producer.flush()
    return count
