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
    "Arrays": "training.data",
    "DomainData": "training.data",
    "load_data": "training.data",
    "FitConfig": "training.fit",
    "FitResult": "training.fit",
    "Prediction": "training.fit",
    "fit": "training.fit",
    "predict": "training.fit",
    "seed_everything": "training.fit",
    "SavedModel": "training.train_job",
    "TrainJob": "training.train_job",
    "train_domain": "training.train_job",
    "Fitted": "training.crossfit",
    "cross_fit": "training.crossfit",
    "fit_model": "training.crossfit",
    "binary_metrics": "training.evaluate",
    "choose_threshold": "training.evaluate",
    "expected_calibration_error": "training.evaluate",
    "quantile_metrics": "training.evaluate",
    "score_split": "training.evaluate",
    "IncrementalTrainer": "training.incremental_trainer",
    "RefreshPolicy": "training.refresh_policy",
    "PromotionRule": "training.promotion_rule",
    "ExampleBuffer": "training.example_buffer",
    "FineTune": "training.fine_tune",
    "RecordSource": "training.record_source",
    "TrainerLoop": "training.trainer_loop",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'training' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
