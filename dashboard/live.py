"""Recent alerts and scores, as read from ``risk.alerts`` and ``risk.scores``: bounded, pure.

Nothing here talks to Kafka: ``Dashboard`` feeds it what its consumers read, the tests feed it
by hand. Time is passed in (seconds), so rates are testable.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Any

import numpy as np

from crmrisk.stream.events import RiskAlert, RiskScore

__all__ = ["LiveView"]

_BINS = np.linspace(0.0, 1.0, 21)  # score histogram: 20 bins of 0.05


class LiveView:
    """The dashboard's memory of the stream.

    Parameters
    ----------
    alerts
        Recent alerts kept (the feed).
    scores
        Recent probabilities kept per domain (the "now" distribution).
    customers
        Customers whose score history is kept (least recently scored dropped first).
    history
        Scores kept per customer.
    rate_window_s
        Seconds over which events/s is counted.
    """

    def __init__(
        self,
        alerts: int = 500,
        scores: int = 5000,
        customers: int = 50_000,
        history: int = 30,
        rate_window_s: float = 10.0,
    ) -> None:
        self.alerts: deque[RiskAlert] = deque(maxlen=alerts)
        self._scores_kept = scores
        self.scores: dict[str, deque[float]] = {}
        self._history: OrderedDict[tuple[str, str], deque[dict]] = OrderedDict()
        self._customers, self._history_len = customers, history
        self._arrivals: deque[float] = deque()
        self._window = rate_window_s
        self._latest_alert: dict[tuple[str, str], RiskAlert] = {}
        self.scores_seen = 0
        self.alerts_seen = 0
        self.versions: dict[str, str] = {}  # domain -> the version of its newest score or alert

    def add_alert(self, alert: RiskAlert) -> None:
        self.alerts.appendleft(alert)
        self._latest_alert[(alert.domain, alert.customer_id)] = alert
        self.versions[alert.domain] = alert.model_version  # an alert names the served version too
        self.alerts_seen += 1

    def add_score(self, score: RiskScore, now_s: float) -> None:
        self.scores.setdefault(score.domain, deque(maxlen=self._scores_kept)).append(
            score.probability
        )
        self.versions[score.domain] = score.model_version
        key = (score.domain, score.customer_id)
        history = self._history.pop(key, None) or deque(maxlen=self._history_len)
        history.append(
            {
                "event_id": score.event_id,
                "event_time": score.event_time.isoformat(),
                "probability": score.probability,
                "model_version": score.model_version,
            }
        )
        self._history[key] = history
        if len(self._history) > self._customers:
            self._history.popitem(last=False)
        self._arrivals.append(now_s)
        self.scores_seen += 1

    def events_per_s(self, now_s: float) -> float:
        """Scores published per second over the last ``rate_window_s`` (one per event)."""
        while self._arrivals and self._arrivals[0] < now_s - self._window:
            self._arrivals.popleft()
        return len(self._arrivals) / self._window

    def score_history(self, domain: str, customer: str) -> list[dict]:
        return list(self._history.get((domain, customer), ()))

    def latest_alert(self, domain: str, customer: str) -> RiskAlert | None:
        return self._latest_alert.get((domain, customer))

    def top_customers(self, n: int = 10) -> list[dict[str, Any]]:
        """Customers of the recent alerts ranked by expected loss (else probability)."""
        best: dict[tuple[str, str], RiskAlert] = {}
        for a in self.alerts:
            key = (a.domain, a.customer_id)
            if key not in best:  # newest alert per customer (the feed is newest first)
                best[key] = a
        ranked = sorted(best.values(), key=lambda a: -(a.expected_loss or a.probability))
        return [
            {
                "customer_id": a.customer_id,
                "domain": a.domain,
                "probability": a.probability,
                "expected_loss": a.expected_loss,
            }
            for a in ranked[:n]
        ]

    def histogram(self, domain: str) -> list[float]:
        """Shares of the recent scores in 20 bins of 0.05."""
        values = np.asarray(self.scores.get(domain, ()), dtype=np.float64)
        if values.size == 0:
            return [0.0] * (len(_BINS) - 1)
        counts, _ = np.histogram(values, bins=_BINS)
        return (counts / values.size).round(4).tolist()

    def recent_scores(self, domain: str) -> np.ndarray:
        return np.asarray(self.scores.get(domain, ()), dtype=np.float64)


def histogram_of(values: np.ndarray) -> list[float]:
    """The same 20 bins for any sample of probabilities (the training window's)."""
    if values.size == 0:
        return [0.0] * (len(_BINS) - 1)
    counts, _ = np.histogram(values, bins=_BINS)
    return (counts / values.size).round(4).tolist()
