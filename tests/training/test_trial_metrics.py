"""The guard's Prometheus series follow the latest review and go away with the trial."""

from datetime import UTC, datetime

from prometheus_client import generate_latest

from crmrisk.lifecycle import Trial
from crmrisk.training.trial_metrics import TrialMetrics
from crmrisk.training.trial_review import Review, Side


def _review(verdict="fail") -> Review:
    trial = Trial("credit", "shadow", "v2", 0.0, datetime(2024, 1, 1, tzinfo=UTC), "test")
    return Review(
        trial,
        Side("v1", 900, 0.71, 0.05, 300, 0.74, 20.0),
        Side("v2", 900, 0.66, 0.09, 300, 0.61, 31.0),
        verdict,
        "realized AUC 0.610 below the champion's 0.740 by more than 0.02",
        0.0,
        mean_abs_difference=0.04,
        alert_agreement=0.93,
        alerts_only_challenger=12,
    )


def _value(metrics: TrialMetrics, name: str, **labels) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_observe__sets_each_side_and_clear_removes_the_domains_series():
    m = TrialMetrics()
    m.observe(_review())
    assert _value(m, "crmrisk_trial_info", domain="credit", mode="shadow", champion="v1",
                  challenger="v2") == 1  # fmt: skip
    assert _value(m, "crmrisk_trial_auc", domain="credit", side="challenger",
                  kind="realized") == 0.61  # fmt: skip
    assert _value(m, "crmrisk_trial_auc", domain="credit", side="champion",
                  kind="estimated") == 0.71  # fmt: skip
    assert _value(m, "crmrisk_trial_model_us", domain="credit", side="challenger") == 31.0
    assert _value(m, "crmrisk_trial_alert_agreement", domain="credit") == 0.93
    assert _value(m, "crmrisk_trial_verdict", domain="credit") == -1
    m.observe(_review("pass"))
    assert _value(m, "crmrisk_trial_verdict", domain="credit") == 1
    m.clear("credit")
    text = generate_latest(m.registry).decode()
    assert 'domain="credit"' not in text
