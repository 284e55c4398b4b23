"""Is the challenger on trial as good as the champion? The figures of both, and a verdict.

A **shadow** scored the champion's own windows (``risk.scores.shadow``): both sides are the same
rows, so agreement (mean |difference|, same alert decision) and the would-be alerts are paired.
A **canary** served its share of customers (``risk.scores``, its own ``model_version``): the
sides are different customers, compared through their estimated and realized performance.

The verdict, in this order (``Rules``):

1. ``fail`` when the challenger's error rate exceeds ``max_error_rate``: rows of canary
   customers the champion had to serve because the canary failed (``stream/challenger.py``),
   or shadow rows without a shadow score;
2. with at least ``min_labelled`` labelled rows on each side (both classes): ``fail`` when the
   challenger's realized AUC is below the champion's by more than ``margin``, else ``pass``;
3. with at least ``min_scores`` scores on each side: the same on the estimated AUC (assumes
   calibration: ``training.performance.ASSUMPTIONS``);
4. otherwise ``wait``. A ``pass`` also waits until the trial has run ``min_trial_s``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, NamedTuple, Protocol

import numpy as np

from crmrisk.stream.events import Outcome, RiskScore, ShadowScore
from crmrisk.training.performance import expected_auc, join_outcomes, realized

__all__ = ["Review", "Rules", "Side", "TrialLike", "review_trial"]

CanaryRows = Callable[[Sequence[str], float], np.ndarray]  # stream.challenger.canary_rows


class TrialLike(Protocol):
    """What a review needs of a trial (``state.Trial``)."""

    domain: str
    mode: Literal["shadow", "canary"]
    version: str
    percent: float
    started_at: datetime


class _Served(NamedTuple):
    """What ``join_outcomes`` needs of a score (a champion's side of a shadow record too)."""

    domain: str
    customer_id: str
    model_version: str
    event_time: datetime
    scored_at: datetime
    probability: float


@dataclass(frozen=True)
class Rules:
    margin: float = 0.02  # AUC the challenger may be below the champion
    min_labelled: int = 200
    min_scores: int = 500
    max_error_rate: float = 0.05
    min_trial_s: float = 0.0  # a pass needs the trial to have run this long (a fail does not)


@dataclass(frozen=True)
class Side:
    """One side's figures over the trial so far."""

    version: str
    scores: int
    estimated_auc: float | None
    alert_rate: float | None  # share of scores at or above the threshold
    labelled: int
    realized_auc: float | None
    mean_us: float | None = None  # model time per row (shadow records carry it)


@dataclass(frozen=True)
class Review:
    trial: TrialLike
    champion: Side
    challenger: Side
    verdict: Literal["pass", "fail", "wait"]
    reason: str
    error_rate: float | None
    mean_abs_difference: float | None = None  # shadow: paired rows
    alert_agreement: float | None = None  # shadow: share of rows with the same decision
    alerts_only_challenger: int = 0  # shadow: rows it would alert on and the champion not
    alerts_only_champion: int = 0


def _side(
    version: str, served: Sequence[_Served], outcomes: Sequence[Outcome], threshold: float
) -> Side:
    p = np.array([s.probability for s in served], np.float64)
    pairs = join_outcomes(served, outcomes)  # type: ignore[arg-type]
    real = None
    if pairs:
        real = realized(
            np.array([s.probability for s, _ in pairs]),
            np.array([o.label for _, o in pairs]),
            threshold,
        )
    est = expected_auc(p) if len(p) >= 2 else float("nan")
    return Side(
        version=version,
        scores=len(p),
        estimated_auc=None if np.isnan(est) else est,
        alert_rate=float((p >= threshold).mean()) if len(p) else None,
        labelled=real.n if real else 0,
        realized_auc=real.auc if real else None,
    )


def _verdict(
    champion: Side, challenger: Side, error_rate: float | None, rules: Rules, ran_s: float
) -> tuple[Literal["pass", "fail", "wait"], str]:
    verdict, reason = _evidence(champion, challenger, error_rate, rules)
    if verdict == "pass" and ran_s < rules.min_trial_s:
        return (
            "wait",
            f"{reason}; the trial ran {ran_s / 3600:.1f} of {rules.min_trial_s / 3600:g} h",
        )
    return verdict, reason


def _evidence(
    champion: Side, challenger: Side, error_rate: float | None, rules: Rules
) -> tuple[Literal["pass", "fail", "wait"], str]:
    if error_rate is not None and error_rate > rules.max_error_rate:
        return "fail", f"error rate {error_rate:.1%} above {rules.max_error_rate:.1%}"
    for kind, a, b, n, need in (
        (
            "realized",
            champion.realized_auc,
            challenger.realized_auc,
            min(champion.labelled, challenger.labelled),
            rules.min_labelled,
        ),
        (
            "estimated",
            champion.estimated_auc,
            challenger.estimated_auc,
            min(champion.scores, challenger.scores),
            rules.min_scores,
        ),
    ):
        if a is None or b is None or n < need:
            continue
        if b < a - rules.margin:
            return "fail", (
                f"{kind} AUC {b:.3f} below the champion's {a:.3f} by more than {rules.margin:g}"
            )
        return "pass", f"{kind} AUC {b:.3f} vs the champion's {a:.3f} (margin {rules.margin:g})"
    return "wait", (
        f"not enough evidence yet: {challenger.labelled} labelled / {challenger.scores} scored "
        f"rows of the challenger (need {rules.min_labelled} labelled or {rules.min_scores} scored)"
    )


def review_trial(
    trial: TrialLike,
    champion_version: str,
    scores: Sequence[RiskScore],
    shadow_scores: Sequence[ShadowScore],
    outcomes: Sequence[Outcome],
    threshold: float,
    canary_rows: CanaryRows,
    rules: Rules = Rules(),
    now: datetime | None = None,
) -> Review:
    """Review ``trial`` from what was published since it started (``scores``: risk.scores,
    ``shadow_scores``: risk.scores.shadow, any domain; ``outcomes``: crm.outcomes).
    ``canary_rows(customer ids, percent)``: which customers a canary serves (the workers' rule,
    ``stream.challenger.canary_rows``)."""
    since = trial.started_at
    ran_s = ((now or datetime.now(UTC)) - since).total_seconds()
    outcomes = [o for o in outcomes if o.domain == trial.domain]
    if trial.mode == "shadow":
        return _review_shadow(trial, champion_version, scores, shadow_scores, outcomes, threshold,
                              rules, ran_s)  # fmt: skip
    mine = [s for s in scores if s.domain == trial.domain and s.scored_at >= since]
    canary = [s for s in mine if s.model_version == trial.version]
    if canary:  # from the first row it served (workers load it a moment after the start)
        first = min(s.scored_at for s in canary)
        mine = [s for s in mine if s.scored_at >= first]
    champion = [s for s in mine if s.model_version == champion_version]
    ours = canary_rows([s.customer_id for s in champion], trial.percent)
    fell_back = int(ours.sum())  # canary customers the champion served: the canary failed
    error_rate = fell_back / (fell_back + len(canary)) if canary or fell_back else None
    c_side = _side(champion_version, [s for s, o in zip(champion, ours, strict=True) if not o],
                   outcomes, threshold)  # fmt: skip
    t_side = _side(trial.version, canary, outcomes, threshold)
    verdict, reason = _verdict(c_side, t_side, error_rate, rules, ran_s)
    return Review(trial, c_side, t_side, verdict, reason, error_rate)


def _review_shadow(trial, champion_version, scores, shadow_scores, outcomes, threshold, rules,
                   ran_s):  # fmt: skip
    since = trial.started_at
    shadow = [
        s
        for s in shadow_scores
        if s.domain == trial.domain and s.model_version == trial.version and s.scored_at >= since
    ]
    champion = [
        _Served(s.domain, s.customer_id, s.champion_version, s.event_time, s.scored_at,
                s.champion_probability)
        for s in shadow
    ]  # fmt: skip
    challenger = [
        _Served(s.domain, s.customer_id, s.model_version, s.event_time, s.scored_at, s.probability)
        for s in shadow
    ]
    error_rate = None
    if shadow:  # champion rows scored since the shadow's first row, without a shadow row
        first = min(s.scored_at for s in shadow)
        served = sum(
            1
            for s in scores
            if s.domain == trial.domain
            and s.model_version == champion_version
            and s.scored_at >= first
        )
        error_rate = max(0.0, 1 - len(shadow) / served) if served else None
    c_side = _side(champion_version, champion, outcomes, threshold)
    t_side = _side(trial.version, challenger, outcomes, threshold)
    if shadow:
        c_side = _with_cost(c_side, np.mean([s.champion_us for s in shadow]))
        t_side = _with_cost(t_side, np.mean([s.shadow_us for s in shadow]))
    verdict, reason = _verdict(c_side, t_side, error_rate, rules, ran_s)
    a = np.array([s.champion_probability for s in shadow])
    b = np.array([s.probability for s in shadow])
    return Review(
        trial,
        c_side,
        t_side,
        verdict,
        reason,
        error_rate,
        mean_abs_difference=float(np.abs(a - b).mean()) if shadow else None,
        alert_agreement=float(((a >= threshold) == (b >= threshold)).mean()) if shadow else None,
        alerts_only_challenger=int(((b >= threshold) & (a < threshold)).sum()),
        alerts_only_champion=int(((a >= threshold) & (b < threshold)).sum()),
    )


def _with_cost(side: Side, mean_us: float) -> Side:
    return Side(**{**side.__dict__, "mean_us": float(mean_us)})
