"""``crmrisk alerts``: tail ``risk.alerts``, one readable line per alert."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from crmrisk.commands.context import current_settings
from crmrisk.errors import require_services
from crmrisk.settings import Settings
from crmrisk.stream.events import RiskAlert
from crmrisk.stream.kafka_consumer import new_consumer

__all__ = ["format_alert", "register"]

_console = Console()


def format_alert(alert: RiskAlert) -> str:
    """One line: when, who, how risky, how much is at stake, and why (the top reasons)."""
    loss = (
        f"  expected loss {alert.expected_loss:>12,.0f}" if alert.expected_loss is not None else ""
    )
    if alert.reasons:  # reason codes: what moved the score, in the customer's own values
        why = "; ".join(c.text for c in alert.reasons[:3])
    else:  # a worker with reasons off: the most attended events
        why = ", ".join(
            f"{e.kind}@{e.event_time:%Y-%m-%d} {e.weight:.2f}" for e in alert.top_events
        )
    return (
        f"[bold red]ALERT[/bold red] {alert.raised_at:%H:%M:%S} {alert.domain}/{alert.risk_type} "
        f"customer [bold]{alert.customer_id}[/bold] p={alert.probability:.3f}{loss}  "
        f"[dim]{escape(why)}[/dim]"
    )


async def _tail(settings: Settings, from_beginning: bool, limit: int) -> None:
    k = settings.kafka
    consumer = new_consumer(k.client_config(), [k.topics.alerts], None, f"{k.client_id}-alerts")
    await consumer.start()
    try:
        if not from_beginning:
            await consumer.seek_to_end()
        shown = 0
        while not limit or shown < limit:
            left = limit - shown if limit else None  # getmany's cap is over all partitions
            for records in (await consumer.getmany(timeout_ms=1000, max_records=left)).values():
                for record in records:
                    _console.print(format_alert(RiskAlert.model_validate_json(record.value)))
                    shown += 1
    finally:
        await consumer.stop()


def command(
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Show past alerts too.")
    ] = False,
    limit: Annotated[int, typer.Option(help="Stop after N alerts (0 = follow forever).")] = 0,
) -> None:
    """Follow risk.alerts and print each alert on one line (Ctrl-C stops)."""
    settings = current_settings()
    # The consumer would retry an absent or refusing broker for ever: a clear error instead.
    require_services(settings, redis=False)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_tail(settings, from_beginning, limit))


def register(root: typer.Typer) -> None:
    root.command("alerts", help=" ".join((command.__doc__ or "").split()))(command)
