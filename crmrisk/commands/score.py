"""``crmrisk score CUSTOMER --domain D``: the customer's latest score and its explanation."""

from __future__ import annotations

import json
from typing import Annotated

import redis
import typer
from rich.console import Console
from rich.table import Table

from crmrisk.settings import Settings
from state import CustomerSequenceStore, LatestScoreStore
from stream.events import RiskScore

__all__ = ["register", "render_score"]

_console = Console()


def render_score(score: RiskScore, window_size: int) -> Table:
    table = Table(
        title=(
            f"{score.domain} customer {score.customer_id}: p = {score.probability:.4f} "
            f"(model {score.model_version})"
        ),
        caption=(
            f"scored at {score.scored_at:%Y-%m-%d %H:%M:%S} UTC on event {score.event_id} "
            f"({score.event_time:%Y-%m-%d}); {window_size} events in the window"
        ),
    )
    for column in ("top events by attention", "kind", "event time", "weight"):
        table.add_column(column)
    for ref in score.top_events:
        table.add_row(
            ref.event_id, ref.kind, f"{ref.event_time:%Y-%m-%d %H:%M}", f"{ref.weight:.3f}"
        )
    return table


def command(
    customer: Annotated[str, typer.Argument(help="Customer id.")],
    domain: Annotated[str, typer.Option("--domain", "-d", help="Domain.")] = "credit",
    as_json: Annotated[bool, typer.Option("--json", help="Print the RiskScore JSON.")] = False,
) -> None:
    """Print a customer's latest score and the events that explain it."""
    settings = Settings()
    r = settings.redis
    client = redis.Redis.from_url(r.url, **r.client_kwargs())
    try:
        raw = LatestScoreStore(client, r.key_prefix, r.ttl_s).read(customer, domain)
        window = CustomerSequenceStore(client, r.key_prefix, r.window, r.ttl_s).read(
            customer, domain
        )
    finally:
        client.close()
    if raw is None:
        _console.print(f"no score for {domain} customer {customer!r} (unknown, or expired)")
        raise typer.Exit(1)
    score = RiskScore.model_validate_json(raw)
    if as_json:
        _console.print_json(json.dumps(score.model_dump(mode="json")))
        return
    _console.print(render_score(score, len(window)))
    if score.quantiles:
        _console.print(
            "quantiles: " + ", ".join(f"{k} {v:,.2f}" for k, v in score.quantiles.items())
        )


def register(root: typer.Typer) -> None:
    root.command("score", help=" ".join((command.__doc__ or "").split()))(command)
