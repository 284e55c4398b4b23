"""Training beside the data path: fit loop, cross-fitting, calibration, metrics, refreshes.

Public names resolve lazily (PEP 562), so ``import training.datasets`` (used by ``crmrisk
replay``) does not pull in torch. Modules: ``train`` (load, build, fit, evaluate, save),
``crossfit`` (members on folds, out-of-fold calibration), ``calibration`` (Platt, conformal
margins), ``evaluate`` (metrics, validation-only threshold), ``incremental`` and
``trainer_loop`` (refreshes while serving), ``drift``, ``performance`` (estimated and
realized performance while serving), ``point_in_time``, ``datasets``
(adapters). The paper's tables (baselines, efficiency, the runner, the report) live in
``benchmarks/tables``.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Arrays": "training.train",
    "DomainData": "training.train",
    "FitConfig": "training.train",
    "FitResult": "training.train",
    "Prediction": "training.train",
    "SavedModel": "training.train",
    "TrainJob": "training.train",
    "fit": "training.train",
    "load_data": "training.train",
    "predict": "training.train",
    "seed_everything": "training.train",
    "train_domain": "training.train",
    "Fitted": "training.crossfit",
    "cross_fit": "training.crossfit",
    "fit_model": "training.crossfit",
    "binary_metrics": "training.evaluate",
    "choose_threshold": "training.evaluate",
    "expected_calibration_error": "training.evaluate",
    "quantile_metrics": "training.evaluate",
    "score_split": "training.evaluate",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'training' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
