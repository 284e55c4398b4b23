"""Publish a dataset's events to Kafka in event-time order, at a target rate, keyed by customer.

Used by ``crmrisk replay``, the demo, the integration tests and the benchmark (``replay`` builds
the producer from Settings and shows a progress bar). Events go out in chunks through the batch
producer; the pacer sleeps so that, after each chunk, no more than ``rate x elapsed`` events have
been sent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from stream.events import CustomerEvent, Outcome
from stream.kafka_io import BatchProducer, FastProducer

if TYPE_CHECKING:
    from crmrisk.settings import Settings

__all__ = ["publish_events", "publish_outcomes", "replay"]


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


async def replay(
    settings: Settings,
    events: Sequence[CustomerEvent],
    outcomes: Sequence[Outcome],
    rate: float | None,
    show_progress: bool = True,
) -> float:
    """Publish ``events`` then ``outcomes``; returns the seconds the events took."""
    k = settings.kafka
    # Paced, every small chunk should leave at once; flat out, lingering lets batches fill.
    make = FastProducer if k.producer == "confluent" else BatchProducer
    producer = make(k.client_config(), f"{k.client_id}-replay", linger_ms=0 if rate else 5)
    await producer.start()
    try:
        with Progress(
            TextColumn("[bold]replay[/bold] {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            disable=not show_progress,
        ) as progress:
            task = progress.add_task(k.topics.events, total=len(events), rate="")

            def advance(n: int) -> None:
                elapsed = progress.tasks[task].elapsed or 1e-9
                done = progress.tasks[task].completed + n
                progress.update(task, advance=n, rate=f"{done / elapsed:,.0f} ev/s")

            took = await publish_events(
                producer, k.topics.events, events, rate, on_progress=advance
            )
        await publish_outcomes(producer, k.topics.outcomes, outcomes)
        return took
    finally:
        await producer.stop()
