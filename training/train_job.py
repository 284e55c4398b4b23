"""The publishing job of ``crmrisk train``: one domain end to end, load, build, fit, evaluate,
publish to the registry.

``train_domain`` takes a ``TrainJob`` (plain values, built from Settings by the CLI), cross-fits
the network (``training.crossfit``), scores validation and test (``evaluate``) and publishes
weights and manifest as the domain's next registry version.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from crmrisk import model as models  # the package; ``model`` names a network in this module
from crmrisk.lifecycle.registry import ModelRegistry
from crmrisk.training.crossfit import Fitted, fit_model
from crmrisk.training.data import DomainData, TargetTransform, load_data, subsample
from crmrisk.training.evaluate import quantile_metrics, score_split
from crmrisk.training.fit import FitConfig, Prediction, predict, quantile_levels, seed_everything
from crmrisk.training.tune import tune

__all__ = ["SavedModel", "TrainJob", "evaluate", "train_domain"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainJob:
    """Everything ``crmrisk train`` decides, as plain values (built from Settings by the CLI)."""

    domain: str
    variant: str
    data_dir: Path
    models_dir: Path
    seed: int
    epochs: int
    batch_size: int
    learning_rate: float
    patience: int
    window: int
    device: str  # a torch device name, resolved (``model.devices.resolve_device``)
    monitor: Literal["auc", "loss"] = "auc"
    threads: int = 2
    max_rows: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)
    tune_trials: int = 0  # > 0: tune on validation first (``training.tune``), that many trials
    ema_decay: float = 0.0  # > 0: keep a moving average of the weights (``FitConfig.ema_decay``)


@dataclass(frozen=True)
class SavedModel:
    path: Path
    version: str
    metrics: dict[str, Any]
    fit_seconds: float
    tuning: dict[str, Any] | None = None  # ``Tuned.to_dict()`` when the job tuned first


def evaluate(
    model: torch.nn.Module,
    data: DomainData,
    target_kind: TargetTransform,
    target_scale: float,
    held_out: Fitted | None = None,
) -> dict[str, Any]:
    """Validation and test metrics; the decision threshold comes from validation only.

    ``held_out`` (the cross-fit's ``Fitted``) gives the validation outputs of networks that
    did not train on those rows (out-of-fold when cross-fitted); without it the model predicts
    validation itself, which is honest only when it never trained on validation rows.
    """
    if held_out is not None:
        val = Prediction(held_out.val_probability, held_out.val_quantiles)
    else:
        val = predict(model, data.val, target_kind=target_kind, target_scale=target_scale)
    test = predict(model, data.test, target_kind=target_kind, target_scale=target_scale)
    metrics: dict[str, Any] = score_split(
        data.val.label, val.probability, data.test.label, test.probability
    )
    taus = quantile_levels(model)
    for split, arrays, pred in (("val", data.val, val), ("test", data.test, test)):
        if pred.quantiles is not None and arrays.target is not None:
            metrics[f"quantiles_{split}"] = quantile_metrics(arrays.target, pred.quantiles, taus)
    return metrics


def _json_safe(value: Any) -> Any:
    """NaN/inf (e.g. AUC on a one-class split) become None: the manifest is strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    return value


def train_domain(
    job: TrainJob,
    show_progress: bool = False,
    on_trial: Callable[[int, float], None] | None = None,
) -> SavedModel:
    """Load ``job.domain``, train ``job.variant``, evaluate, and publish it to the registry.

    The model becomes the next version (``v0001``, ``v0002`` ...) of the domain in the registry
    under ``job.models_dir``, the one store the workers and ``crmrisk models`` read; making it
    live is a separate step (``crmrisk train --promote`` or ``crmrisk models promote``).
    With ``job.tune_trials`` the network and optimiser settings are tuned on validation first;
    ``on_trial(number, val_auc)`` hears each trial.
    """
    data = load_data(job.domain, job.data_dir, job.seed, job.window, **job.options)
    data = subsample(data, job.max_rows, job.seed)
    with_quantiles = data.train.target is not None and bool(job.quantiles)
    config = FitConfig(
        epochs=job.epochs,
        batch_size=job.batch_size,
        learning_rate=job.learning_rate,
        patience=job.patience,
        seed=job.seed,
        monitor=job.monitor,
        target_transform=data.target_kind if with_quantiles else "none",
        device=job.device,
        ema_decay=job.ema_decay,
    )
    tuned = None
    if job.tune_trials:
        tuned = tune(data, job.variant, config, job.tune_trials, on_trial)
        config = replace(config, learning_rate=tuned.learning_rate, weight_decay=tuned.weight_decay)
    seed_everything(job.seed)
    network = models.build(
        job.variant,
        event_dim=data.train.event_dim,
        profile_dim=data.train.profile_dim,
        quantiles=job.quantiles if with_quantiles else (),
        **(tuned.overrides if tuned else {}),
    )
    log.info(
        "%s: %d train / %d val / %d test customers, event_dim %d, profile_dim %d",
        job.domain,
        len(data.train),
        len(data.val),
        len(data.test),
        data.train.event_dim,
        data.train.profile_dim,
    )
    fitted = fit_model(network, data.train, data.val, config, show_progress=show_progress)
    metrics = evaluate(network, data, config.target_transform, fitted.target_scale, fitted)
    metrics.update(
        fit_seconds=fitted.seconds,
        best_epoch=fitted.best_epochs,
        epochs_run=fitted.epochs_run,
        cross_fitted=fitted.cross_fitted,
        calibration=fitted.calibration,
        history=fitted.history,
    )
    manifest = {
        "domain": job.domain,
        "variant": job.variant,
        "encoder": data.encoder,
        "metrics": metrics,
        "data_window": dict(data.window or {}, window=job.window, seed=job.seed),
        "target_transform": config.target_transform,
        "target_scale": fitted.target_scale,
        "training": {
            "epochs": job.epochs,
            "batch_size": job.batch_size,
            "learning_rate": job.learning_rate,
            "patience": job.patience,
            "monitor": job.monitor,
            "seed": job.seed,
            "max_rows": job.max_rows,
            "options": dict(job.options),
            "weight_decay": config.weight_decay,
            "ema_decay": config.ema_decay,
        },
    }
    if tuned is not None:
        manifest["tuning"] = tuned.to_dict()
        manifest["training"]["learning_rate"] = config.learning_rate
    manifest["training"]["device"] = job.device
    entry = ModelRegistry(job.models_dir).publish(job.domain, network.cpu(), _json_safe(manifest))
    return SavedModel(
        path=entry.path,
        version=entry.version,
        metrics=metrics,
        fit_seconds=fitted.seconds,
        tuning=tuned.to_dict() if tuned else None,
    )
