"""``crmrisk score CUSTOMER --domain D``: the customer's latest score and its explanation.

``--explain`` adds reason codes: the model version that gave the score (from the registry)
attributes it over the customer's stored window, exactly as the alert path does.
"""

from __future__ import annotations

import json
from typing import Annotated

import redis
import typer
from rich.console import Console
from rich.table import Table

from crmrisk.commands.context import current_settings
from crmrisk.lifecycle.registry import ModelRegistry, RegistryError
from crmrisk.settings import Settings
from crmrisk.state import CustomerSequence, CustomerSequenceStore, LatestScoreStore
from crmrisk.stream.events import ReasonCode, RiskScore

__all__ = ["explain_window", "register", "render_reasons", "render_score"]

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


def render_reasons(codes: list[ReasonCode]) -> Table:
    table = Table(title="reasons (contribution to the probability)")
    for column in ("field", "value", "from", "contribution"):
        table.add_column(column, justify="right" if column == "contribution" else "left")
    for c in codes:
        where = "profile" if c.source == "profile" else f"{c.kind} {c.event_time:%Y-%m-%d}"
        table.add_row(c.field, c.value, where, f"{c.contribution:+.4f}")
    return table


def explain_window(
    settings: Settings, score: RiskScore, window: CustomerSequence
) -> tuple[list[ReasonCode], str]:
    """Reason codes for ``window`` by the model version that gave ``score``, and the sentence.

    Raises ``LookupError`` naming what is missing (the version, or a window to explain).
    """
    import torch

    from crmrisk.stream.models import load_domain_model
    from crmrisk.stream.reasons import reason_codes, reason_sentence
    from crmrisk.stream.requests import ScoreRequest
    from crmrisk.stream.scorer import Scored

    if not len(window):
        raise LookupError(f"customer {score.customer_id!r} has no stored events to explain")
    try:
        entry = ModelRegistry(settings.model.dir).get(score.domain, score.model_version)
    except RegistryError as exc:
        raise LookupError(f"model {score.domain}/{score.model_version}: {exc}") from None
    s = settings.scoring
    kit = load_domain_model(
        entry.path, score.domain, torch.device("cpu"), s.top_events, max(s.reasons, 3),
        s.reason_steps,
    )  # fmt: skip
    request = ScoreRequest(score.customer_id, score.domain, score.event_id, 0, 0, window)
    scored = Scored(request, score.probability, None, [], score.model_version)
    (explanation,) = kit.scorer.explain([scored])
    codes = reason_codes(explanation, window)
    return codes, reason_sentence(codes, explanation.probability, explanation.baseline_probability)


def command(
    customer: Annotated[str, typer.Argument(help="Customer id.")],
    domain: Annotated[str, typer.Option("--domain", "-d", help="Domain.")] = "credit",
    as_json: Annotated[bool, typer.Option("--json", help="Print the RiskScore JSON.")] = False,
    explain: Annotated[
        bool,
        typer.Option(
            "--explain", help="Add reason codes (integrated gradients of the scoring model)."
        ),
    ] = False,
) -> None:
    """Print a customer's latest score and the events that explain it."""
    settings = current_settings()
    r = settings.redis
    client = redis.Redis.from_url(r.url, **r.client_kwargs())
    try:
        raw = LatestScoreStore(client, r.key_prefix, r.ttl_s).read(customer, domain)
        window = CustomerSequenceStore(client, r.key_prefix).read(customer, domain)
    finally:
        client.close()
    if raw is None:
        _console.print(f"no score for {domain} customer {customer!r} (unknown, or expired)")
        raise typer.Exit(1)
    score = RiskScore.model_validate_json(raw)
    sentence = None
    if explain:
        try:
            codes, sentence = explain_window(settings, score, window)
        except LookupError as exc:
            _console.print(f"[red]cannot explain:[/red] {exc}")
            raise typer.Exit(1) from None
        score = score.model_copy(update={"reasons": codes})
    if as_json:
        _console.print_json(json.dumps(score.model_dump(mode="json")))
        return
    _console.print(render_score(score, len(window)))
    if sentence is not None:
        _console.print(render_reasons(score.reasons))
        _console.print(sentence)
    if score.quantiles:
        _console.print(
            "quantiles: " + ", ".join(f"{k} {v:,.2f}" for k, v in score.quantiles.items())
        )


def register(root: typer.Typer) -> None:
    root.command("score", help=" ".join((command.__doc__ or "").split()))(command)
