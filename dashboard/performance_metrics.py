"""The dashboard's own Prometheus series: estimated vs realized performance, shadow agreement.

Served on the dashboard's ``/metrics`` (beside the page, behind the same token). Gauges follow
the newest chunk of score event time of each (domain, model version) in the reports of
``dashboard.performance.PerformanceView``; the shadow counters count ``ShadowScore`` messages
as they arrive. A version that leaves the report leaves the gauges.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from crmrisk.stream.events import ShadowScore

__all__ = ["PerformanceMetrics"]

_ESTIMATE = "assumes calibrated probabilities and no concept drift (training.performance)"


class PerformanceMetrics:
    """A registry of the performance series, updated from reports and shadow scores."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        version = ("domain", "version")
        pair = ("domain", "version", "champion")  # version: the challenger's

        def gauge(name: str, doc: str, labels: tuple[str, ...] = version) -> Gauge:
            return Gauge(name, doc, labels, registry=self.registry)

        def counter(name: str, doc: str) -> Counter:
            return Counter(name, doc, pair, registry=self.registry)

        self.estimated_auc = gauge(
            "crmrisk_estimated_auc",
            f"CBPE expected ROC AUC of the newest chunk of scores, without labels; {_ESTIMATE}.",
        )
        self.estimated_auc_band = gauge(
            "crmrisk_estimated_auc_band",
            "Band of the estimated AUC: its std over labels sampled as Bernoulli(p).",
        )
        self.realized_auc = gauge(
            "crmrisk_realized_auc",
            "ROC AUC of the newest chunk whose scores outcomes joined (point in time).",
        )
        self.auc_gap = gauge(
            "crmrisk_auc_gap",
            "Estimated minus realized AUC of the newest chunk having both (concept drift shows "
            "here, not in the estimate).",
        )
        self.expected_positives = gauge(
            "crmrisk_expected_positives",
            "Expected positives (sum of probabilities) of the newest chunk of scores.",
        )
        self.shadow_mean_abs_diff = gauge(
            "crmrisk_shadow_mean_abs_diff",
            "Mean |challenger - champion| probability over the newest chunk of shadow scores.",
            pair,
        )
        self.shadow_agreement = gauge(
            "crmrisk_shadow_alert_agreement",
            "Share of shadow-scored rows of the newest chunk where challenger and champion make "
            "the same alert decision (threshold only, no cool-down).",
            pair,
        )
        self.shadow_scores = counter(
            "crmrisk_shadow_scores", "Shadow scores read from risk.scores.shadow."
        )
        self.shadow_would_alerts = counter(
            "crmrisk_shadow_would_alerts",
            "Shadow scores whose challenger probability reaches the alert threshold.",
        )
        self.shadow_champion_alerts = counter(
            "crmrisk_shadow_champion_alerts",
            "Shadow-scored rows whose champion probability reaches the alert threshold.",
        )
        self._shown: dict[str, set[tuple[Gauge, tuple[str, ...]]]] = {}

    def count_shadow(self, shadow: ShadowScore, threshold: float) -> None:
        labels = (shadow.domain, shadow.model_version, shadow.champion_version)
        self.shadow_scores.labels(*labels).inc()
        if shadow.would_alert:
            self.shadow_would_alerts.labels(*labels).inc()
        if shadow.champion_probability >= threshold:
            self.shadow_champion_alerts.labels(*labels).inc()

    def update(self, domain: str, report: dict[str, Any]) -> None:
        """Set the gauges of ``domain`` from its report; drop the series it no longer has."""
        shown: set[tuple[Gauge, tuple[str, ...]]] = set()

        def put(gauge: Gauge, labels: tuple[str, ...], value: float | None) -> None:
            if value is not None:
                gauge.labels(*labels).set(value)
                shown.add((gauge, labels))

        for version, seen in report["versions"].items():
            labels = (domain, version)
            chunks = seen["chunks"]
            if chunks:
                newest = chunks[-1]
                put(self.estimated_auc, labels, newest["estimated_auc"])
                put(self.estimated_auc_band, labels, newest["auc_std"])
                put(self.expected_positives, labels, newest["expected_positives"])
            labelled = [c for c in chunks if c["realized_auc"] is not None]
            if labelled:
                put(self.realized_auc, labels, labelled[-1]["realized_auc"])
            both = [c for c in labelled if c["estimated_auc"] is not None]
            if both:
                put(self.auc_gap, labels, both[-1]["estimated_auc"] - both[-1]["realized_auc"])
        for pair in report["shadow"]:
            if pair["chunks"]:
                labels = (domain, pair["challenger"], pair["champion"])
                newest = pair["chunks"][-1]
                put(self.shadow_mean_abs_diff, labels, newest["mean_abs_diff"])
                put(self.shadow_agreement, labels, newest["agreement"])
        for gauge, labels in self._shown.get(domain, set()) - shown:
            gauge.remove(*labels)
        self._shown[domain] = shown

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)
