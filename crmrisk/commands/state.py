"""``crmrisk state rebuild``: rebuild Redis state from ``crm.events`` by hand, with a progress bar.

Ingest workers do this by themselves when they claim a partition whose state Redis lost, or a
tail of it (``stream/ownership.py``); this command does it for every partition at once, e.g.
after restoring Redis from an old backup or moving to a new Redis. It applies each partition's
records from where Redis's state stops (``--force``: from the earliest retained offset, from
nothing) through the same stages as live events: windows, and, by scoring each restored event
with the live model, alert states and latest scores; it produces nothing to Kafka. By default
it stops at the ingest group's committed offset, which is where the workers go on from; run it
while they are stopped (their own restore covers the running case).
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from crmrisk.commands.context import current_settings
from crmrisk.settings import Settings

__all__ = ["register"]

_console = Console()

app = typer.Typer(help="Redis state: rebuild it from crm.events.", no_args_is_help=True)


def _live_models(settings: Settings, domains: list[str]) -> dict:
    """The live version of each domain (pointer), else the registry's newest."""
    from crmrisk.lifecycle.registry import ModelRegistry
    from crmrisk.wiring.clients import model_pointer
    from crmrisk.wiring.models import load_models

    pointer, registry = model_pointer(settings), ModelRegistry(settings.model.dir)
    dirs = {}
    for domain in domains:
        version = pointer.current(domain)
        if version is not None:
            dirs[domain] = registry.get(domain, version).path
    return load_models(settings, domains, dirs)


def _ends(settings: Settings, topic: str, to_end: bool) -> dict[int, int]:
    """Per partition of ``topic``: where the rebuild stops (the ingest group's committed offset,
    or the end with ``to_end``)."""
    from kafka import KafkaConsumer, TopicPartition

    k = settings.kafka
    group = KafkaConsumer(
        **k.client_config(), group_id=f"{k.group_id}-ingest", enable_auto_commit=False
    )
    try:
        partitions = sorted(group.partitions_for_topic(topic) or ())
        if not partitions:
            raise typer.BadParameter(f"topic {topic} does not exist or has no partitions")
        tps = [TopicPartition(topic, p) for p in partitions]
        if to_end:
            return {tp.partition: offset for tp, offset in group.end_offsets(tps).items()}
        return {tp.partition: group.committed(tp) or 0 for tp in tps}
    finally:
        group.close()


async def _rebuild(
    settings: Settings, domains: list[str], to_end: bool, force: bool
) -> tuple[int, int]:
    from crmrisk.wiring.worker import build_worker

    k = settings.kafka
    topic = k.topics.events
    worker = build_worker(
        settings.model_copy(
            update={"scoring": settings.scoring.model_copy(update={"rebuild_state": True})}
        ),
        "ingest",
        _live_models(settings, domains),
        handoff="inline",
    )
    pipeline = worker.pipeline
    ends = _ends(settings, topic, to_end)
    if force:
        pipeline.state.clear(topic, sorted(ends))
    partitions = sorted(ends)
    total = sum(ends.values())
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    replayed = 0
    try:
        with Progress(*columns, console=_console, transient=False) as progress:
            task = progress.add_task(f"rebuilding {topic}", total=max(total, 1))
            done_before = 0
            for p in partitions:

                def advance(done: int, total: int, base: int = done_before, end=ends[p]) -> None:
                    progress.update(task, completed=base + (end - total) + done)

                replayed += await pipeline.rebuild(p, ends[p], progress=advance)
                done_before += ends[p]
                progress.update(task, completed=done_before)
    finally:
        await pipeline.close()
        await worker.consumer.stop()  # never started: this only marks it closed
        worker.client.close()
    return len(partitions), replayed


@app.command("rebuild")
def rebuild(
    domain: Annotated[
        list[str] | None,
        typer.Option("--domain", "-d", help="Domains to restore (default: credit)."),
    ] = None,
    to_end: Annotated[
        bool,
        typer.Option(
            "--to-end",
            help="Replay up to the end of each partition instead of the ingest group's "
            "committed offset (only while no ingest worker runs: it would score those again).",
        ),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Forget what Redis holds and rebuild every partition from its earliest "
            "retained offset (e.g. after restoring an old Redis backup of unknown age).",
        ),
    ] = False,
) -> None:
    """Rebuild every customer's window, alert state and latest score from crm.events."""
    from crmrisk.wiring.clients import quiet_kafka_clients

    quiet_kafka_clients()
    settings = current_settings()
    started = time.perf_counter()
    try:
        partitions, replayed = asyncio.run(_rebuild(settings, domain or ["credit"], to_end, force))
    except LookupError as exc:
        raise typer.BadParameter(str(exc)) from None
    took = time.perf_counter() - started
    _console.print(
        f"rebuilt {settings.kafka.topics.events}: {replayed:,} events replayed over {partitions} "
        f"partitions in {took:.1f} s ({replayed / max(took, 1e-9):,.0f} ev/s); partition fences set"
    )


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="state")
