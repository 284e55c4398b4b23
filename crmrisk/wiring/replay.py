"""A dataset replayed onto the project's topics with a producer built from settings."""

from __future__ import annotations

from collections.abc import Sequence

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from crmrisk.settings import Settings
from crmrisk.stream.events import CustomerEvent, Outcome
from crmrisk.stream.kafka_producer import BatchProducer, FastProducer
from crmrisk.stream.replay import publish_events, publish_outcomes

__all__ = ["replay"]


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
