"""``crmrisk replay --domain D --rate R``: a dataset's events onto ``crm.events``, in event-time
order, and its labels onto ``crm.outcomes``, with a progress bar (``training/datasets/feed.py``
says what is published, ``stream/replay.py`` how)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from crmrisk.commands.context import current_settings
from crmrisk.wiring.replay import replay

__all__ = ["register"]

_console = Console()


def command(
    domain: Annotated[str, typer.Option("--domain", "-d", help="Dataset to replay.")] = "credit",
    spec: Annotated[
        Path | None,
        typer.Option(
            "--spec",
            exists=True,
            dir_okay=False,
            help="Replay a spec domain (as in `crmrisk train --spec`) instead of --domain.",
        ),
    ] = None,
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
    from crmrisk.errors import require_services
    from crmrisk.training.datasets.feed import dataset_events, dataset_outcomes, load_records
    from crmrisk.wiring.clients import quiet_kafka_clients

    quiet_kafka_clients()
    settings = current_settings()
    # The producer would retry an absent broker for ever: ask it once, briefly, first.
    require_services(settings, redis=False)
    options = {}
    if spec is not None:
        from crmrisk.commands.spec import spec_for_command

        domain, options["spec"] = spec_for_command(spec)
    records = load_records(
        domain, settings.training.data_dir, settings.training.seed, split or (), **options
    )
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
