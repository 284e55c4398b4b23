"""``crmrisk replay --domain D --rate R``: a dataset's events onto ``crm.events``, in event-time
order, and its labels onto ``crm.outcomes``, with a progress bar.

The profile goes out as a ``kind == "profile"`` event just before the customer's first event:
its fields (limit, demographics, contract) are known from account opening, so every event is
scored with the profile it would have had live. (The adapters date it ``as_of`` for training,
where only the final window matters.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from crmrisk.settings import Settings
from stream.events import CustomerEvent, Outcome
from stream.kafka_io import BatchProducer
from stream.replay import in_event_time_order, publish_events, publish_outcomes

__all__ = ["dataset_events", "dataset_outcomes", "load_records", "register", "replay"]

_console = Console()


def load_records(domain: str, data_dir: Path, seed: int, splits: Sequence[str] = ()) -> list[Any]:
    """The domain's customer records (all splits unless ``splits`` names some)."""
    from training.datasets import load_domain

    dataset = load_domain(domain, Path(data_dir), seed)
    chosen = splits or ("train", "val", "test")
    return [r for name in chosen for r in dataset.splits()[name]]


def dataset_events(records: Sequence[Any], domain: str) -> list[CustomerEvent]:
    """Every record's profile (dated at its first event) and events, in event-time order."""
    events: list[CustomerEvent] = []
    for record in records:
        profile = record.profile_event(domain)
        if record.events:
            first = min(e.event_time for e in record.events)
            profile = profile.model_copy(update={"event_time": min(first, profile.event_time)})
        events.append(profile)
        events.extend(record.events)
    return in_event_time_order(events)


def dataset_outcomes(records: Sequence[Any], domain: str) -> list[Outcome]:
    return [
        Outcome(
            customer_id=r.customer_id,
            domain=domain,
            as_of=r.as_of,
            observed_at=r.as_of,
            label=r.label,
            value=r.target,
        )
        for r in records
    ]


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
    producer = BatchProducer(k.client_config(), f"{k.client_id}-replay", linger_ms=0 if rate else 5)
    await producer.start()
    try:
        with Progress(
            TextColumn("[bold]replay[/bold] {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=_console,
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


def command(
    domain: Annotated[str, typer.Option("--domain", "-d", help="Dataset to replay.")] = "credit",
    rate: Annotated[
        float, typer.Option(help="Events per second (0 = as fast as possible).")
    ] = 1000.0,
    limit: Annotated[int, typer.Option(help="Replay only the first N customers (0 = all).")] = 0,
    split: Annotated[
        list[str] | None, typer.Option(help="Only these splits (train/val/test); default all.")
    ] = None,
) -> None:
    """Publish a dataset's events to crm.events in event-time order, and its labels to
    crm.outcomes."""
    from crmrisk.commands.worker import quiet_kafka_clients

    quiet_kafka_clients()
    settings = Settings()
    records = load_records(domain, settings.training.data_dir, settings.training.seed, split or ())
    if limit:
        records = records[:limit]
    events = dataset_events(records, domain)
    outcomes = dataset_outcomes(records, domain)
    took = asyncio.run(replay(settings, events, outcomes, rate or None))
    _console.print(
        f"published {len(events):,} events of {len(records):,} {domain} customers in {took:.1f} s "
        f"({len(events) / max(took, 1e-9):,.0f} ev/s) and {len(outcomes):,} outcomes"
    )


def register(root: typer.Typer) -> None:
    root.command("replay", help=" ".join((command.__doc__ or "").split()))(command)
