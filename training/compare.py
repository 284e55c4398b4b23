"""Ours beside what a CRM team would otherwise run, on their data: ``crmrisk train --compare``.

The same customers and the same split as the network just trained (same domain or spec, seed,
options and subsample), fed to a logistic regression and a tuned LightGBM the way the paper's
tables feed them (``training/baselines.py``: flattened arrays of the plain linear encoding;
every choice made on validation, the final fit on train + validation). One row per model with
test AUC, PR-AUC, ECE and training seconds, so the table answers "is the deep model worth
running here?" with figures from the user's own rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from crmrisk.training.baselines import TUNING_TRIALS, fit_on_splits, flatten_splits
from crmrisk.training.data import load_data, subsample
from crmrisk.training.train_job import SavedModel, TrainJob

__all__ = ["COMPARED", "ComparisonRow", "compare_with_baselines"]

COMPARED = ("logistic_regression", "lightgbm_tuned")


@dataclass(frozen=True)
class ComparisonRow:
    model: str
    auc: float
    pr_auc: float
    ece: float
    train_seconds: float
    chosen: dict[str, Any] | None = None  # what the baseline decided on validation

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "auc": self.auc,
            "pr_auc": self.pr_auc,
            "ece": self.ece,
            "train_seconds": self.train_seconds,
            "chosen": self.chosen,
        }


def compare_with_baselines(
    job: TrainJob,
    ours: SavedModel,
    trials: int = TUNING_TRIALS,
    on_baseline: Callable[[str], None] | None = None,
) -> list[ComparisonRow]:
    """Rows for ``ours`` (its published test metrics) and each of ``COMPARED`` on ``job``'s split.

    ``trials`` is the tuned LightGBM's Optuna budget (the tables use ``TUNING_TRIALS``);
    ``on_baseline`` hears each baseline's name before it trains (a progress line).
    """
    test = ours.metrics["test"]
    # Tuning counts as training, as the tuned LightGBM's 40 trials count in its seconds.
    tuning = ours.tuning or {}
    seconds = ours.fit_seconds + sum(t["seconds"] for t in tuning.get("trials", []))
    name = f"ours ({job.variant}{', tuned' if tuning else ''})"
    rows = [ComparisonRow(name, test["auc"], test["pr_auc"], test["ece"], seconds)]
    data = load_data(
        job.domain, job.data_dir, job.seed, job.window, numeric="linear", **job.options
    )
    data = subsample(data, job.max_rows, job.seed)
    flat = flatten_splits(data)
    for name in COMPARED:
        if on_baseline is not None:
            on_baseline(name)
        result, metrics = fit_on_splits(name, data, flat, job.seed, job.threads, trials)
        test = metrics["test"]
        rows.append(
            ComparisonRow(
                name, test["auc"], test["pr_auc"], test["ece"], result.train_seconds, result.params
            )
        )
    return rows
