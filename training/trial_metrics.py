"""The guard's Prometheus series: each review of a trial, champion beside challenger.

Gauges are set from the latest ``training.trial_review.Review`` of a domain and cleared when no
trial runs; ``crmrisk models guard --every S --metrics-port P`` serves them (Grafana panels in
``deploy/grafana/dashboards/crmrisk.json``).
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge

from crmrisk.training.trial_review import Review

__all__ = ["TrialMetrics"]

_VERDICTS = {"fail": -1.0, "wait": 0.0, "pass": 1.0}


class TrialMetrics:
    """A registry of its own (``stream.metrics.serve`` exposes it) and the last review time."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.last_step_s: float | None = None
        self.info = Gauge(
            "crmrisk_trial_info",
            "1 while a trial runs: its mode and the versions on each side.",
            ["domain", "mode", "champion", "challenger"],
            registry=r,
        )
        self.auc = Gauge(
            "crmrisk_trial_auc",
            "AUC over the trial so far, per side; kind=estimated (from calibrated scores, "
            "assumes no concept drift) or realized (from joined outcomes).",
            ["domain", "side", "kind"],
            registry=r,
        )
        self.scores = Gauge(
            "crmrisk_trial_scores", "Scores per side since the trial started.", ["domain", "side"],
            registry=r,
        )  # fmt: skip
        self.labelled = Gauge(
            "crmrisk_trial_labelled", "Scores per side an outcome joined.", ["domain", "side"],
            registry=r,
        )  # fmt: skip
        self.alert_rate = Gauge(
            "crmrisk_trial_alert_rate", "Share of scores at or above the alert threshold.",
            ["domain", "side"], registry=r,
        )  # fmt: skip
        self.model_us = Gauge(
            "crmrisk_trial_model_us", "Model time per row (shadow trials).", ["domain", "side"],
            registry=r,
        )  # fmt: skip
        self.error_rate = Gauge(
            "crmrisk_trial_error_rate", "Share of the challenger's rows it failed to score.",
            ["domain"], registry=r,
        )  # fmt: skip
        self.agreement = Gauge(
            "crmrisk_trial_alert_agreement",
            "Shadow: share of paired rows with the same alert decision.", ["domain"], registry=r,
        )  # fmt: skip
        self.difference = Gauge(
            "crmrisk_trial_mean_abs_difference",
            "Shadow: mean |champion - challenger| probability over paired rows.", ["domain"],
            registry=r,
        )  # fmt: skip
        self.only_challenger = Gauge(
            "crmrisk_trial_alerts_only_challenger",
            "Shadow: rows the challenger would alert on and the champion does not.", ["domain"],
            registry=r,
        )  # fmt: skip
        self.verdict = Gauge(
            "crmrisk_trial_verdict", "The guard's verdict: -1 fail, 0 wait, 1 pass.", ["domain"],
            registry=r,
        )  # fmt: skip
        self.ended = Counter(
            "crmrisk_trial_ended", "Trials the guard ended, by outcome.", ["domain", "outcome"],
            registry=r,
        )  # fmt: skip

    def observe(self, review: Review) -> None:
        t, d = review.trial, review.trial.domain
        self.clear(d)
        self.info.labels(d, t.mode, review.champion.version, t.version).set(1)
        for side_name, side in (("champion", review.champion), ("challenger", review.challenger)):
            for kind, value in (("estimated", side.estimated_auc), ("realized", side.realized_auc)):
                if value is not None:
                    self.auc.labels(d, side_name, kind).set(value)
            self.scores.labels(d, side_name).set(side.scores)
            self.labelled.labels(d, side_name).set(side.labelled)
            if side.alert_rate is not None:
                self.alert_rate.labels(d, side_name).set(side.alert_rate)
            if side.mean_us is not None:
                self.model_us.labels(d, side_name).set(side.mean_us)
        for gauge, value in (
            (self.error_rate, review.error_rate),
            (self.agreement, review.alert_agreement),
            (self.difference, review.mean_abs_difference),
        ):
            if value is not None:
                gauge.labels(d).set(value)
        self.only_challenger.labels(d).set(review.alerts_only_challenger)
        self.verdict.labels(d).set(_VERDICTS[review.verdict])
        self.last_step_s = time.time()

    def clear(self, domain: str) -> None:
        """No trial (any more): its series go away."""
        for gauge in (self.info, self.auc, self.scores, self.labelled, self.alert_rate,
                      self.model_us, self.error_rate, self.agreement, self.difference,
                      self.only_challenger, self.verdict):  # fmt: skip
            # The label values of each series, from its samples (in declared label order).
            series = {tuple(x.labels.values()) for f in gauge.collect() for x in f.samples}
            for labels in series:
                if labels and labels[0] == domain:
                    gauge.remove(*labels)
        self.last_step_s = time.time()
