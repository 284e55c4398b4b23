"""``crmrisk models shadow|canary|compare|guard|end-trial``: try a challenger on live traffic.

``shadow VERSION`` makes every worker that follows the pointer (``--follow-pointer``) score each
batch again with VERSION, publishing to ``risk.scores.shadow``; ``canary VERSION --percent P``
serves P% of customers (a stable hash of their id) with it, alerts included. ``compare`` reads
the topics and prints both sides (``training.trial_review``); ``guard`` does the same and ends
a failing trial (rolled back, announced, reason recorded), once or every ``--every`` seconds;
``guard --promote-on-pass`` makes a passing one live (after ``--min-hours``), as does
``promote VERSION``; ``end-trial`` stops it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Literal

from rich.console import Console
from rich.table import Table

from crmrisk.errors import UserError, require_services

if TYPE_CHECKING:
    from crmrisk.settings import Settings
    from crmrisk.training.trial_review import Review, Rules

__all__ = ["compare_trial", "end_trial", "guard_trial", "start_trial"]

_console = Console()


def _promoter(settings: Settings):

    from crmrisk.lifecycle.promoter import ModelPromoter, announcement_producer
    from crmrisk.lifecycle.registry import ModelRegistry
    from crmrisk.wiring.clients import model_pointer

    k = settings.kafka
    producer = announcement_producer(k.client_config(), f"{k.client_id}-trials")
    promoter = ModelPromoter(
        ModelRegistry(settings.model.dir), model_pointer(settings), producer,
        k.topics.model_updates,
    )  # fmt: skip
    return promoter, producer


def start_trial(
    settings: Settings,
    domain: str,
    version: str,
    mode: Literal["shadow", "canary"],
    percent: float,
    reason: str,
) -> None:
    """Put ``version`` on trial (creating ``risk.scores.shadow`` if missing) and say so."""
    from crmrisk.commands.topics import create_topics
    from crmrisk.lifecycle import PointerError
    from crmrisk.lifecycle.registry import RegistryError

    require_services(settings)
    # A shadow's scores need their topic before its first batch.
    create_topics(settings.kafka, names=[settings.kafka.topics.shadow_scores])
    promoter, producer = _promoter(settings)
    try:
        trial = promoter.start_trial(domain, version, mode, reason, percent=percent)
    except (RegistryError, PointerError, ValueError) as exc:
        raise UserError(str(exc)) from exc
    finally:
        producer.close()
    share = f" for {trial.percent:g}% of customers" if mode == "canary" else ""
    _console.print(
        f"{domain}: {version} on trial as a {mode}{share} beside the live model; workers "
        f"following the pointer pick it up within {settings.training.reload_check_every_s:g} s"
    )


def end_trial(settings: Settings, domain: str, reason: str) -> None:
    require_services(settings)
    promoter, producer = _promoter(settings)
    try:
        end = promoter.end_trial(domain, "stopped", reason)
    finally:
        producer.close()
    if end is None:
        raise UserError(f"{domain} has no trial running")
    _console.print(f"{domain}: trial of {end.trial.version} ({end.trial.mode}) stopped")


def review(settings: Settings, domain: str, rules: Rules, threshold: float | None) -> Review:
    """Read the topics to their ends now and review ``domain``'s running trial."""
    from crmrisk.commands.performance import parse_records, read_topic
    from crmrisk.stream.challenger import canary_rows
    from crmrisk.stream.events import Outcome, RiskScore, ShadowScore
    from crmrisk.training.trial_review import review_trial
    from crmrisk.wiring.clients import model_pointer

    pointer = model_pointer(settings)
    trial = pointer.trial(domain)
    if trial is None:
        raise UserError(f"{domain} has no trial running: start one with `crmrisk models shadow`")
    champion = pointer.current(domain)
    k = settings.kafka
    scores, bad = parse_records(RiskScore, read_topic(settings, k.topics.scores))
    shadow, bad_shadow = [], 0
    if trial.mode == "shadow":
        raw = read_topic(settings, k.topics.shadow_scores)
        shadow, bad_shadow = parse_records(ShadowScore, raw)
    outcomes, bad_outcomes = parse_records(Outcome, read_topic(settings, k.topics.outcomes))
    if bad or bad_shadow or bad_outcomes:
        _console.print(
            f"skipped unreadable records: {bad} scores, {bad_shadow} shadow scores, "
            f"{bad_outcomes} outcomes"
        )
    cut = settings.scoring.alert_threshold if threshold is None else threshold
    return review_trial(trial, champion, scores, shadow, outcomes, cut, canary_rows, rules)


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def _print(r: Review) -> None:
    t = r.trial
    share = f" {t.percent:g}%" if t.mode == "canary" else ""
    table = Table(
        title=f"{t.domain}: {t.mode}{share} trial of {t.version} since {t.started_at:%F %H:%M}",
        caption="estimated AUC assumes calibrated probabilities and no concept drift",
    )
    for column in ("", "version", "scores", "est. AUC", "labelled", "real AUC", "alert rate",
                   "µs/row"):  # fmt: skip
        table.add_column(column, justify="right")
    for name, side in (("champion", r.champion), ("challenger", r.challenger)):
        table.add_row(
            name, side.version, str(side.scores), _fmt(side.estimated_auc), str(side.labelled),
            _fmt(side.realized_auc), _fmt(side.alert_rate, ".1%"), _fmt(side.mean_us, ".1f"),
        )  # fmt: skip
    _console.print(table)
    if r.mean_abs_difference is not None:
        _console.print(
            f"paired rows: mean |difference| {r.mean_abs_difference:.4f}, same alert decision "
            f"{r.alert_agreement:.1%}; would alert where the champion does not: "
            f"{r.alerts_only_challenger}, the reverse: {r.alerts_only_champion}"
        )
    if r.error_rate is not None:
        _console.print(f"challenger error rate: {r.error_rate:.2%}")
    _console.print(f"verdict: [bold]{r.verdict}[/bold]: {r.reason}")


def compare_trial(settings: Settings, domain: str, rules: Rules, threshold: float | None) -> None:
    require_services(settings, redis=False)
    _print(review(settings, domain, rules, threshold))


def guard_trial(
    settings: Settings,
    domain: str,
    rules: Rules,
    threshold: float | None,
    every_s: float | None,
    promote_on_pass: bool = False,
    metrics_port: int = 0,
) -> None:
    """Review the trial; a failing one is rolled back, a passing one made live with
    ``promote_on_pass``. Once (an error if none runs), or with ``every_s`` as a service: every
    ``every_s`` seconds for ever, idle while no trial runs, its review on /metrics."""
    from crmrisk.stream.metrics import serve
    from crmrisk.training.trial_metrics import TrialMetrics
    from crmrisk.wiring.clients import model_pointer

    require_services(settings)
    pointer = model_pointer(settings)
    metrics = TrialMetrics()
    server = None
    if metrics_port:
        token = settings.scoring.metrics_token
        server = serve(metrics, metrics_port, stale_after_s=max(3 * (every_s or 0), 60.0),
                       host=settings.scoring.metrics_host,
                       token=token.get_secret_value() if token else None)  # fmt: skip
    try:
        while True:
            if every_s is not None and pointer.trial(domain) is None:
                metrics.clear(domain)
            else:
                r = review(settings, domain, rules, threshold)
                metrics.observe(r)
                _print(r)
                _act(settings, r, promote_on_pass, metrics)
            if every_s is None:
                return
            time.sleep(every_s)
    finally:
        if server is not None:
            server.shutdown()


def _act(settings: Settings, r: Review, promote_on_pass: bool, metrics) -> None:
    """Roll a failing trial back; make a passing one live if asked."""
    domain = r.trial.domain
    if r.verdict == "wait" or (r.verdict == "pass" and not promote_on_pass):
        return
    promoter, producer = _promoter(settings)
    try:
        if r.verdict == "fail":
            promoter.end_trial(domain, "rolled_back", r.reason, version=r.trial.version)
            metrics.ended.labels(domain, "rolled_back").inc()
            _console.print(f"{domain}: trial of {r.trial.version} rolled back: {r.reason}")
        else:
            change = promoter.promote(
                domain, r.trial.version, f"{r.trial.mode} passed: {r.reason}",
                expected=r.champion.version,
            )  # fmt: skip
            metrics.ended.labels(domain, "promoted").inc()
            _console.print(f"{domain}: {change.version} is live ({r.trial.mode} passed)")
    finally:
        producer.close()
