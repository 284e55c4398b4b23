"""Training beside the data path: fit loop, cross-fitting, calibration, metrics, refreshes.

Public names resolve lazily (PEP 562), so ``import training.datasets`` (used by ``crmrisk
replay``) does not pull in torch. Modules, by job:

- training from scratch: ``data`` (splits as arrays), ``fit`` (the fit loop, predict),
  ``crossfit`` (members on folds, out-of-fold calibration), ``calibration`` (Platt, conformal
  margins), ``evaluate`` (metrics, validation-only threshold), ``train_job`` (one domain end
  to end, published to the registry);
- refreshes while serving: ``refresh_policy`` (when), ``example_buffer`` (on what),
  ``fine_tune`` (how), ``promotion_rule`` (whether), ``incremental_trainer`` (one refresh),
  ``trainer_loop`` (records in from a ``record_source``), ``drift``, ``point_in_time``;
- watching: ``performance`` (estimated and realized), ``trial_metrics``, ``trial_review``;
- ``datasets`` (adapters).

The paper's tables (baselines, efficiency, the runner, the report) live in ``benchmarks/tables``.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Arrays": "crmrisk.training.data",
    "DomainData": "crmrisk.training.data",
    "load_data": "crmrisk.training.data",
    "FitConfig": "crmrisk.training.fit",
    "FitResult": "crmrisk.training.fit",
    "Prediction": "crmrisk.training.fit",
    "fit": "crmrisk.training.fit",
    "predict": "crmrisk.training.fit",
    "seed_everything": "crmrisk.training.fit",
    "SavedModel": "crmrisk.training.train_job",
    "TrainJob": "crmrisk.training.train_job",
    "train_domain": "crmrisk.training.train_job",
    "Fitted": "crmrisk.training.crossfit",
    "cross_fit": "crmrisk.training.crossfit",
    "fit_model": "crmrisk.training.crossfit",
    "binary_metrics": "crmrisk.training.evaluate",
    "choose_threshold": "crmrisk.training.evaluate",
    "expected_calibration_error": "crmrisk.training.evaluate",
    "quantile_metrics": "crmrisk.training.evaluate",
    "score_split": "crmrisk.training.evaluate",
    "IncrementalTrainer": "crmrisk.training.incremental_trainer",
    "RefreshPolicy": "crmrisk.training.refresh_policy",
    "PromotionRule": "crmrisk.training.promotion_rule",
    "ExampleBuffer": "crmrisk.training.example_buffer",
    "FineTune": "crmrisk.training.fine_tune",
    "RecordSource": "crmrisk.training.record_source",
    "TrainerLoop": "crmrisk.training.trainer_loop",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'training' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
