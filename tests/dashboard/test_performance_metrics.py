"""PerformanceMetrics (dashboard/performance_metrics.py): the series follow the newest chunks of
the reports, leave with their version, and count shadow scores as they arrive."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from crmrisk.dashboard.performance import PerformanceView
from crmrisk.dashboard.performance_metrics import PerformanceMetrics
from crmrisk.stream.events import Outcome, RiskScore, ShadowScore

T0 = datetime(2024, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def _score(customer: str, p: float, at: datetime, version: str) -> RiskScore:
    return RiskScore(
        customer_id=customer, domain="credit", event_id=f"e-{customer}", event_time=at,
        probability=p, model_version=version, scored_at=at,
    )  # fmt: skip


def _report(version: str = "v1", labelled: bool = True) -> dict:
    view = PerformanceView(0.5, 3600.0, 10, 1000, 1000, 10, 50)
    for i, p in enumerate([0.1, 0.3, 0.6, 0.9]):
        view.add_score(_score(f"a{i}", p, T0, version))
        if labelled:
            as_of = T0 + HOUR
            view.add_outcome(
                Outcome(customer_id=f"a{i}", domain="credit", as_of=as_of, observed_at=as_of,
                        label=[0, 1, 0, 1][i])
            )  # fmt: skip
    for i, p in enumerate([0.2, 0.8]):  # a newer chunk without outcomes
        view.add_score(_score(f"b{i}", p, T0 + 2 * HOUR, version))
    return view.report("credit")


def _value(metrics: PerformanceMetrics, name: str, **labels) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_update__newest_chunk_estimate_and_newest_realized_with_their_gap():
    metrics = PerformanceMetrics()
    report = _report()
    metrics.update("credit", report)
    old, new = report["versions"]["v1"]["chunks"]
    labels = {"domain": "credit", "version": "v1"}
    assert _value(metrics, "crmrisk_estimated_auc", **labels) == pytest.approx(new["estimated_auc"])
    assert _value(metrics, "crmrisk_estimated_auc_band", **labels) == pytest.approx(new["auc_std"])
    assert _value(metrics, "crmrisk_expected_positives", **labels) == pytest.approx(1.0)
    assert _value(metrics, "crmrisk_realized_auc", **labels) == pytest.approx(0.75)
    assert old["realized_auc"] == pytest.approx(0.75)
    gap = old["estimated_auc"] - 0.75  # the newest chunk having both: the first
    assert _value(metrics, "crmrisk_auc_gap", **labels) == pytest.approx(gap)


def test_update__a_version_gone_from_the_report_leaves_the_series():
    metrics = PerformanceMetrics()
    metrics.update("credit", _report("v1"))
    metrics.update("credit", _report("v2", labelled=False))
    assert _value(metrics, "crmrisk_estimated_auc", domain="credit", version="v1") is None
    assert _value(metrics, "crmrisk_realized_auc", domain="credit", version="v1") is None
    assert _value(metrics, "crmrisk_estimated_auc", domain="credit", version="v2") is not None
    assert _value(metrics, "crmrisk_realized_auc", domain="credit", version="v2") is None


def test_shadow__agreement_gauges_and_counters_per_pair():
    metrics = PerformanceMetrics()
    view = PerformanceView(0.5, 3600.0, 10, 1000, 1000, 10, 50)
    for k, (champion, challenger) in enumerate([(0.6, 0.7), (0.4, 0.55), (0.2, 0.1)]):
        shadow = ShadowScore(
            customer_id=f"c{k}", domain="credit", event_id=f"e{k}", event_time=T0,
            probability=challenger, model_version="v2", champion_version="v1",
            champion_probability=champion, would_alert=challenger >= 0.5, scored_at=T0,
            shadow_us=1.0, champion_us=1.0,
        )  # fmt: skip
        view.add_shadow(shadow)
        metrics.count_shadow(shadow, 0.5)
    metrics.update("credit", view.report("credit"))
    pair = {"domain": "credit", "version": "v2", "champion": "v1"}
    agreement = _value(metrics, "crmrisk_shadow_alert_agreement", **pair)
    difference = _value(metrics, "crmrisk_shadow_mean_abs_diff", **pair)
    assert agreement == pytest.approx(2 / 3, abs=1e-6)  # the report rounds to 6 places
    assert difference == pytest.approx(0.35 / 3, abs=1e-6)
    assert _value(metrics, "crmrisk_shadow_scores_total", **pair) == 3
    assert _value(metrics, "crmrisk_shadow_would_alerts_total", **pair) == 2
    assert _value(metrics, "crmrisk_shadow_champion_alerts_total", **pair) == 1


def test_exposition__every_series_has_help_text():
    metrics = PerformanceMetrics()
    metrics.update("credit", _report())
    families = list(text_string_to_metric_families(metrics.exposition().decode()))
    assert {f.name for f in families} >= {"crmrisk_estimated_auc", "crmrisk_auc_gap"}
    assert all(len(f.documentation) > 20 for f in families)
