"""Scores -> alerts: the alert policy applied per customer, given its stored state.

Pure: the pipeline reads the batch's alert states, calls ``alerts_for`` (the policy runs in score
order) and writes the changed states back only after the alerts are acknowledged by Kafka, so a
crash in between re-fires an alert (same ``alert_id``) rather than losing it. Alerts come out
ranked by expected loss (probability x exposure) where the domain has an exposure, else by
probability. Reason codes are computed here, for the alerts only (one batched attribution per
domain): the non-alerting majority of scores never pays for them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from model.attribution import Explanation
from state import AlertState
from stream.alert_policy import AlertPolicy, decide
from stream.events import RiskAlert
from stream.reasons import reason_codes, reason_sentence
from stream.score_encoding import top_event_refs
from stream.scorer import Scored, Scorer

__all__ = ["Alerter"]


class Alerter:
    def __init__(self, policy: AlertPolicy, risk_types: Mapping[str, str]) -> None:
        self.policy = policy
        self._risk_types = dict(risk_types)

    def alerts_for(
        self,
        scored: Sequence[Scored],
        stored: Mapping[tuple[str, str], AlertState],
        scorers: Mapping[str, Scorer] | None = None,
    ) -> tuple[list[RiskAlert], list[tuple[str, str, AlertState]]]:
        """Alerts to publish, and the state changes to write once they are published.

        ``stored`` holds the state of every (customer, domain) in ``scored``; ``scorers`` (the
        ones that scored them, by domain) explain the alerts with reason codes.
        """
        states = dict(stored)
        changed: dict[tuple[str, str], AlertState] = {}
        firing: list[Scored] = []
        for s in scored:
            request = s.request
            key = (request.customer_id, request.domain)
            fire, state = decide(
                self.policy, states[key], s.probability, request.event_time_ms / 1000
            )
            if state != states[key]:
                states[key] = changed[key] = state
            if fire:
                firing.append(s)
        explanations = _explain(firing, scorers or {})
        alerts = [self._alert(s, e) for s, e in zip(firing, explanations, strict=True)]
        alerts.sort(key=_rank)
        return alerts, [(c, d, st) for (c, d), st in changed.items()]

    def _alert(self, s: Scored, explanation: Explanation | None) -> RiskAlert:
        request = s.request
        exposure = request.sequence.exposure
        loss = None if exposure is None else s.probability * exposure
        reason = f"probability {s.probability:.3f} >= threshold {self.policy.threshold:.3f}"
        if loss is not None:
            reason += f"; expected loss {loss:,.0f} on exposure {exposure:,.0f}"
        codes, baseline = [], None
        if explanation is not None:
            codes = reason_codes(explanation, request.sequence)
            baseline = explanation.baseline_probability
            reason += ". " + reason_sentence(codes, s.probability, baseline)
        return RiskAlert(
            alert_id=f"{request.domain}:{request.customer_id}:{request.event_id}",
            customer_id=request.customer_id,
            domain=request.domain,
            risk_type=self._risk_types.get(request.domain, "risk"),
            probability=s.probability,
            threshold=self.policy.threshold,
            expected_loss=loss,
            model_version=s.model_version,
            event_id=request.event_id,
            raised_at=datetime.now(UTC),
            reason=reason,
            top_events=top_event_refs(s.top_events),
            reasons=codes,
            baseline_probability=baseline,
        )


def _explain(firing: Sequence[Scored], scorers: Mapping[str, Scorer]) -> list:
    """Per alert, its explanation (None without an explainer): one batch per domain."""
    by_domain: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(firing):
        by_domain[s.request.domain].append(i)
    out: list[Explanation | None] = [None] * len(firing)
    for domain, index in by_domain.items():
        scorer = scorers.get(domain)
        if scorer is None:
            continue
        for i, e in zip(index, scorer.explain([firing[i] for i in index]), strict=True):
            out[i] = e
    return out


def _rank(alert: RiskAlert) -> float:
    return -(alert.expected_loss if alert.expected_loss is not None else alert.probability)
