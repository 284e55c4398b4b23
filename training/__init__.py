"""Training beside the data path: fit loop, metrics, baselines, efficiency, the paper's tables.

Public names resolve lazily (PEP 562), so ``import training.datasets`` (used by ``crmrisk
replay``) does not pull in torch, LightGBM and matplotlib. Modules: ``train`` (load, build, fit,
evaluate, save), ``evaluate`` (metrics, validation-only threshold), ``baselines`` (classical
models on flattened arrays), ``efficiency`` (params, FLOPs, latency, throughput),
``experiments`` (Tables 1-4 runner), ``report`` (markdown + plots), ``datasets`` (adapters).
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
    "binary_metrics": "training.evaluate",
    "choose_threshold": "training.evaluate",
    "expected_calibration_error": "training.evaluate",
    "quantile_metrics": "training.evaluate",
    "score_split": "training.evaluate",
    "BASELINES": "training.baselines",
    "fit_baseline": "training.baselines",
    "flatten": "training.baselines",
    "Efficiency": "training.efficiency",
    "measure_efficiency": "training.efficiency",
    "BenchConfig": "training.experiments",
    "bench_config": "training.experiments",
    "run_benchmark": "training.experiments",
    "write_report": "training.report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'training' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
