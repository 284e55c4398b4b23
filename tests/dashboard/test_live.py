"""LiveView (dashboard/live.py): the feed, the ranking, the rate, the bounded history."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from crmrisk.dashboard.live import LiveView
from crmrisk.stream.events import RiskAlert, RiskScore

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _alert(customer: str, p: float, loss: float | None) -> RiskAlert:
    return RiskAlert(
        alert_id=f"credit:{customer}:e", customer_id=customer, domain="credit",
        risk_type="default", probability=p, threshold=0.5, expected_loss=loss,
        model_version="v1", event_id="e", raised_at=T0, reason="r",
    )  # fmt: skip


def _score(customer: str, p: float, event: str = "e") -> RiskScore:
    return RiskScore(
        customer_id=customer, domain="credit", event_id=event, event_time=T0, probability=p,
        model_version="v2", scored_at=T0,
    )  # fmt: skip


def test_top_customers__rank_by_expected_loss_newest_alert_per_customer():
    live = LiveView()
    live.add_alert(_alert("a", 0.9, 100.0))
    live.add_alert(_alert("b", 0.6, 5000.0))
    live.add_alert(_alert("a", 0.7, 50.0))  # a's newest alert counts, not its largest
    top = live.top_customers()
    assert [(t["customer_id"], t["expected_loss"]) for t in top] == [("b", 5000.0), ("a", 50.0)]
    assert live.latest_alert("credit", "a").expected_loss == 50.0


def test_events_per_s__counts_the_window_only():
    live = LiveView(rate_window_s=10.0)
    for i in range(30):
        live.add_score(_score("c", 0.1), now_s=100.0 + i)  # one per second for 30 s
    assert live.events_per_s(now_s=129.5) == pytest.approx(1.0)
    assert live.events_per_s(now_s=1000.0) == 0.0


def test_history_and_histogram__bounded_and_in_shares():
    live = LiveView(customers=2, history=3)
    for i in range(5):
        live.add_score(_score("a", 0.02 + 0.2 * i, f"e{i}"), now_s=0)
    live.add_score(_score("b", 0.5), now_s=0)
    live.add_score(_score("c", 0.99), now_s=0)  # evicts a, the least recently scored
    assert live.score_history("credit", "a") == []
    assert [h["probability"] for h in live.score_history("credit", "c")] == [0.99]
    shares = live.histogram("credit")
    assert len(shares) == 20 and sum(shares) == pytest.approx(1.0, abs=1e-3)  # rounded to 4 dp
    assert shares[0] == pytest.approx(1 / 7, abs=1e-4) and shares[-1] == pytest.approx(
        1 / 7, abs=1e-4
    )
    assert live.versions == {"credit": "v2"}
