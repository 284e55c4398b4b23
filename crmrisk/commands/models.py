"""``crmrisk models``: the versions in the registry, which one is live, and moving it.

``crmrisk models`` lists a domain's versions with their held-out metrics and decisions;
``promote VERSION`` / ``rollback [VERSION]`` move the live pointer in Redis and announce the
change on ``risk.model-updates`` (inference workers load it between batches); ``import PATH``
registers a checkpoint written by ``crmrisk train``; ``history`` shows the pointer's moves;
``performance`` shows estimated vs realized performance per chunk (``commands/performance.py``);
``shadow``, ``canary``, ``compare``, ``guard`` and ``end-trial`` try a challenger on live
traffic (``commands/trials.py``).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from crmrisk.commands.context import current_settings
from crmrisk.lifecycle import ModelPointer, PointerError
from crmrisk.lifecycle.promoter import ModelPromoter, announcement_producer
from crmrisk.lifecycle.registry import ModelRegistry, ModelVersion, RegistryError
from crmrisk.settings import Settings
from crmrisk.wiring.clients import model_pointer

__all__ = ["app", "register"]

_console = Console()

app = typer.Typer(
    help="Model versions: list, promote, roll back, import; shadow and canary trials.",
    invoke_without_command=True,
)

_Domain = Annotated[str, typer.Option("--domain", "-d", help="The domain (credit, telco ...).")]


def _pointer(settings: Settings) -> ModelPointer:
    return model_pointer(settings)


def _promoter(settings: Settings, pointer: ModelPointer) -> tuple[ModelPromoter, Any]:
    k = settings.kafka
    producer = announcement_producer(k.client_config(), f"{k.client_id}-models")
    registry = ModelRegistry(settings.model.dir)
    return ModelPromoter(registry, pointer, producer, k.topics.model_updates), producer


def _metric(entry: ModelVersion, name: str) -> str:
    value = entry.metrics.get(name)
    return f"{value:.4f}" if isinstance(value, int | float) else "-"


def _trial_mark(trial, version: str) -> str:
    if trial is None or trial.version != version:
        return ""
    return "shadow" if trial.mode == "shadow" else f"canary {trial.percent:g}%"


def list_versions(settings: Settings, domain: str) -> None:
    """Print ``domain``'s versions, oldest first, the live one marked."""
    registry = ModelRegistry(settings.model.dir)
    versions = registry.list(domain)
    if not versions:
        _console.print(f"no versions of {domain} under {registry.root}")
        return
    trial = None
    try:
        pointer = _pointer(settings)
        live, trial = pointer.current(domain), pointer.trial(domain)
    except PointerError as exc:
        live = None
        _console.print(f"[yellow]live version unknown ({exc})[/yellow]")
    table = Table(title=f"{domain} models in {registry.root}")
    for column in (
        "version",
        "live",
        "parent",
        "created",
        "held-out AUC",
        "calib. err",
        "champion AUC",
        "decision",
    ):
        table.add_column(column, no_wrap=column in ("version", "live"))
    for v in versions:
        decision = v.decision.get("reason", "") if v.decision else ""
        table.add_row(
            v.version,
            "*" if v.version == live else _trial_mark(trial, v.version),
            v.parent or "-",
            (v.created_at or "")[:19],
            _metric(v, "holdout_auc"),
            _metric(v, "holdout_calibration_error"),
            _metric(v, "champion_holdout_auc"),
            decision,
        )
    _console.print(table)


@app.callback()
def _default(ctx: typer.Context, domain: _Domain = "credit") -> None:
    """List DOMAIN's versions when no subcommand is given."""
    if ctx.invoked_subcommand is None:
        list_versions(current_settings(), domain)


@app.command("list")
def list_command(domain: _Domain = "credit") -> None:
    """List DOMAIN's versions with held-out metrics and promotion decisions."""
    list_versions(current_settings(), domain)


@app.command("promote")
def promote(
    version: Annotated[str, typer.Argument(help="The version to make live, e.g. v0003.")],
    domain: _Domain = "credit",
    reason: Annotated[str, typer.Option(help="Recorded in the pointer history.")] = "operator",
) -> None:
    """Make VERSION live (its hash is verified first) and announce it to the workers."""
    promote_version(current_settings(), domain, version, reason)


def promote_version(settings: Settings, domain: str, version: str, reason: str) -> None:
    """Move ``domain``'s pointer to ``version`` and announce it (what ``promote`` runs)."""
    pointer = _pointer(settings)
    promoter, producer = _promoter(settings, pointer)
    try:
        change = promoter.promote(domain, version, f"promote: {reason}")
    except (RegistryError, PointerError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    finally:
        producer.close()
    _console.print(f"{domain}: live version {change.previous or '-'} -> {change.version}")


@app.command("performance")
def performance(
    domain: _Domain = "credit",
    since: Annotated[
        datetime | None,
        typer.Option(help="Only scores and outcomes from this time on (naive = local time)."),
    ] = None,
    chunk_hours: Annotated[float, typer.Option(help="Chunk length, in hours.")] = 24.0,
    threshold: Annotated[
        float | None,
        typer.Option(min=0, max=1, help="Alert threshold (default RISK_SCORING__ALERT_THRESHOLD)."),
    ] = None,
) -> None:
    """Estimated (from calibrated scores) vs realized (from outcomes) performance per chunk."""
    from crmrisk.commands.performance import show_performance

    show_performance(current_settings(), domain, since, chunk_hours, threshold)


def _rules(
    margin: float, min_labelled: int, min_scores: int, max_error_rate: float, min_hours: float = 0
):
    from crmrisk.training.trial_review import Rules

    return Rules(margin, min_labelled, min_scores, max_error_rate, min_hours * 3600)


_Margin = Annotated[
    float, typer.Option(min=0, max=1, help="AUC the challenger may lose to the champion.")
]
_MinLabelled = Annotated[
    int, typer.Option(min=1, help="Labelled rows per side before realized AUC decides.")
]
_MinScores = Annotated[
    int, typer.Option(min=2, help="Scores per side before the estimated AUC decides.")
]
_MaxErrors = Annotated[
    float, typer.Option(min=0, max=1, help="Share of challenger rows that may fail to score.")
]
_Threshold = Annotated[
    float | None,
    typer.Option(min=0, max=1, help="Alert threshold (default RISK_SCORING__ALERT_THRESHOLD)."),
]


@app.command("shadow")
def shadow(
    version: Annotated[str, typer.Argument(help="The challenger version, e.g. v0004.")],
    domain: _Domain = "credit",
    reason: Annotated[str, typer.Option(help="Recorded in the trial history.")] = "operator",
) -> None:
    """Score every batch with VERSION too (risk.scores.shadow, never alerts).

    Workers following the pointer score each batch's windows again with VERSION; compare the
    two with `crmrisk models compare`, stop with `end-trial`, make it live with `promote`.
    """
    from crmrisk.commands.trials import start_trial

    start_trial(current_settings(), domain, version, "shadow", 0.0, reason)


@app.command("canary")
def canary(
    version: Annotated[str, typer.Argument(help="The challenger version, e.g. v0004.")],
    percent: Annotated[
        float, typer.Option(min=0, max=100, help="Share of customers it serves (stable hash).")
    ] = 5.0,
    domain: _Domain = "credit",
    reason: Annotated[str, typer.Option(help="Recorded in the trial history.")] = "operator",
) -> None:
    """Serve PERCENT of customers (scores and alerts) with VERSION.

    Customers are chosen by a stable hash of their id. `crmrisk models guard` rolls it back
    when it does worse than the live model; `promote VERSION` makes it live.
    """
    from crmrisk.commands.trials import start_trial

    start_trial(current_settings(), domain, version, "canary", percent, reason)


@app.command("end-trial")
def end_trial_command(
    domain: _Domain = "credit",
    reason: Annotated[str, typer.Option(help="Recorded in the trial history.")] = "operator",
) -> None:
    """Stop DOMAIN's shadow or canary trial (the live model serves everything again)."""
    from crmrisk.commands.trials import end_trial

    end_trial(current_settings(), domain, reason)


@app.command("compare")
def compare(
    domain: _Domain = "credit",
    threshold: _Threshold = None,
    margin: _Margin = 0.02,
    min_labelled: _MinLabelled = 200,
    min_scores: _MinScores = 500,
    max_error_rate: _MaxErrors = 0.05,
) -> None:
    """Champion beside challenger on the running trial, with the guard's verdict.

    Scores, estimated and realized AUC, alert rate, model time per row, paired agreement
    (shadow), the challenger's error rate, and what `guard` would do.
    """
    from crmrisk.commands.trials import compare_trial

    rules = _rules(margin, min_labelled, min_scores, max_error_rate)
    compare_trial(current_settings(), domain, rules, threshold)


@app.command("guard")
def guard(
    domain: _Domain = "credit",
    every: Annotated[
        float | None,
        typer.Option(min=1, help="Run as a service: review every EVERY seconds (default: once)."),
    ] = None,
    threshold: _Threshold = None,
    margin: _Margin = 0.02,
    min_labelled: _MinLabelled = 200,
    min_scores: _MinScores = 500,
    max_error_rate: _MaxErrors = 0.05,
    promote_on_pass: Annotated[
        bool, typer.Option(help="Make the challenger live once it passes.")
    ] = False,
    min_hours: Annotated[
        float, typer.Option(min=0, help="Hours a trial runs before it can pass.")
    ] = 0.0,
    metrics_port: Annotated[
        int, typer.Option(min=0, help="Serve the reviews on /metrics here (0 = off).")
    ] = 0,
) -> None:
    """Review the running trial; roll it back if it does worse than the live model.

    It fails on an error rate above MAX_ERROR_RATE, or a realized (else estimated) AUC below
    the champion's by more than MARGIN; the rollback is announced and its reason recorded.
    """
    from crmrisk.commands.trials import guard_trial

    rules = _rules(margin, min_labelled, min_scores, max_error_rate, min_hours)
    guard_trial(current_settings(), domain, rules, threshold, every, promote_on_pass, metrics_port)


@app.command("rollback")
def rollback(
    version: Annotated[
        str | None, typer.Argument(help="Target version (default: the previous live one).")
    ] = None,
    domain: _Domain = "credit",
) -> None:
    """Go back to VERSION, or to the version that was live before the current one."""
    settings = current_settings()
    pointer = _pointer(settings)
    promoter, producer = _promoter(settings, pointer)
    try:
        change = promoter.rollback(domain, version)
    except (RegistryError, PointerError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    finally:
        producer.close()
    _console.print(f"{domain}: rolled back {change.previous or '-'} -> {change.version}")


@app.command("import")
def import_command(
    path: Annotated[Path, typer.Argument(help="A checkpoint directory (crmrisk train output).")],
    domain: _Domain = "credit",
    live: Annotated[bool, typer.Option("--promote", help="Also make it live.")] = False,
) -> None:
    """Register a checkpoint as the next version (verified and re-saved by the registry)."""
    settings = current_settings()
    registry = ModelRegistry(settings.model.dir)
    try:
        entry = registry.import_checkpoint(domain, path)
    except RegistryError as exc:
        raise typer.BadParameter(str(exc)) from exc
    _console.print(f"{domain}: imported {path} as {entry.version}")
    if live:
        promote(entry.version, domain, reason=f"imported from {path}")


@app.command("history")
def history(domain: _Domain = "credit", limit: int = 20) -> None:
    """The live pointer's recent moves, newest first."""
    for change in _pointer(current_settings()).history(domain, limit):
        _console.print(
            f"{change.changed_at:%Y-%m-%d %H:%M:%S} {change.previous or '-':>6} -> "
            f"{change.version}  {change.reason}"
        )


@app.command("show")
def show(version: str, domain: _Domain = "credit") -> None:
    """Print VERSION's manifest without the encoder (JSON)."""
    entry = ModelRegistry(current_settings().model.dir).get(domain, version)
    shown = {k: v for k, v in entry.manifest.items() if k != "encoder"}
    _console.print_json(json.dumps(shown))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="models")
