"""Scores -> alerts: the alert policy applied per customer, given its stored state.

Pure: the pipeline reads the batch's alert states, calls ``alerts_for`` (the policy runs in score
order) and writes the changed states back only after the alerts are acknowledged by Kafka, so a
crash in between re-fires an alert (same ``alert_id``) rather than losing it. Alerts come out
ranked by expected loss (probability x exposure) where the domain has an exposure, else by
probability.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from state import AlertState
from stream.alert_policy import AlertPolicy, decide
from stream.events import RiskAlert
from stream.score_encoding import top_event_refs
from stream.scorer import Scored

__all__ = ["Alerter"]


class Alerter:
    def __init__(self, policy: AlertPolicy, risk_types: Mapping[str, str]) -> None:
        self.policy = policy
        self._risk_types = dict(risk_types)

    def alerts_for(
        self, scored: Sequence[Scored], stored: Mapping[tuple[str, str], AlertState]
    ) -> tuple[list[RiskAlert], list[tuple[str, str, AlertState]]]:
        """Alerts to publish, and the state changes to write once they are published.

        ``stored`` holds the state of every (customer, domain) in ``scored``.
        """
        states = dict(stored)
        changed: dict[tuple[str, str], AlertState] = {}
        alerts: list[RiskAlert] = []
        for s in scored:
            request = s.request
            key = (request.customer_id, request.domain)
            fire, state = decide(
                self.policy, states[key], s.probability, request.event_time_ms / 1000
            )
            if state != states[key]:
                states[key] = changed[key] = state
            if fire:
                alerts.append(self._alert(s))
        alerts.sort(key=_rank)
        return alerts, [(c, d, st) for (c, d), st in changed.items()]

    def _alert(self, s: Scored) -> RiskAlert:
        request = s.request
        exposure = request.sequence.exposure
        loss = None if exposure is None else s.probability * exposure
        reason = f"probability {s.probability:.3f} >= threshold {self.policy.threshold:.3f}"
        if loss is not None:
            reason += f"; expected loss {loss:,.0f} on exposure {exposure:,.0f}"
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
        )


def _rank(alert: RiskAlert) -> float:
    return -(alert.expected_loss if alert.expected_loss is not None else alert.probability)
