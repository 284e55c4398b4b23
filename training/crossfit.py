"""Cross-fitting: each member of an ensemble trains on other folds of all labelled rows.

With ``K = model.config.members`` members the labelled rows (training and validation splits
together) are cut into ``K`` folds, stratified by label and grouped by customer (one customer's
rows at several cutoffs stay in one fold). Member ``j`` trains on the other folds and
early-stops on fold ``j``; its predictions on fold ``j`` are out-of-fold: every labelled row gets
one prediction from a network that never saw it. Those predictions calibrate the ensemble (Platt
scaling, conformal quantile margins: ``training/calibration.py``) and give honest validation
metrics; the test split is never touched.

Why: every labelled row trains ``K - 1`` members, so the most recent rows (the validation tail
of a time-ordered split, closest to what comes next) reach the model; averaging members trained
on different rows is the cheap ensemble that lifts neural nets on tabular data; and the held-out
predictions come for free.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from crmrisk.model import RiskModel
from crmrisk.training.calibration import conformal_margin, platt
from crmrisk.training.data import Arrays
from crmrisk.training.fit import (
    FitConfig,
    FitResult,
    fit,
    predict,
    quantile_levels,
    target_scale,
    target_transform,
)

__all__ = ["CrossFit", "Fitted", "calibrate", "cross_fit", "fit_model", "folds", "recalibrate"]

log = logging.getLogger(__name__)


@dataclass
class CrossFit:
    """What cross-fitting did: one ``FitResult`` per member and the out-of-fold predictions."""

    members: list[FitResult]
    fold: np.ndarray  # (N,) fold of each labelled row
    oof_logit: np.ndarray  # (N,) uncalibrated logit of the member that did not train on the row
    oof_quantiles: np.ndarray | None  # (N, Q) training units (transformed target / scale)
    target_scale: float
    seconds: float

    @property
    def best_epochs(self) -> list[int]:
        return [r.best_epoch for r in self.members]

    @property
    def epochs_run(self) -> int:
        return sum(r.epochs_run for r in self.members)


def folds(labels: np.ndarray, groups: list[str] | None, k: int, seed: int) -> np.ndarray:
    """Fold index per row: stratified by label, grouped by customer, shuffled with ``seed``.

    >>> f = folds(np.array([0, 1] * 6), None, 3, seed=0)
    >>> sorted(np.bincount(f).tolist()), [int(np.sum(f[1::2] == j)) for j in range(3)]
    ([4, 4, 4], [2, 2, 2])
    """
    n = len(labels)
    if k < 2:
        raise ValueError(f"cross-fitting needs at least 2 folds, got {k}")
    if n < k:
        raise ValueError(f"{n} labelled rows cannot make {k} folds")
    ids = np.asarray(groups if groups is not None else np.arange(n).astype(str))
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    out = np.empty(n, dtype=np.int64)
    for j, (_, held) in enumerate(splitter.split(np.zeros(n), labels, ids)):
        out[held] = j
    return out


def cross_fit(
    model: RiskModel, labelled: Arrays, config: FitConfig, show_progress: bool = False
) -> CrossFit:
    """Train ``model.members`` on folds of ``labelled`` in place (see the module docstring)."""
    k = len(model.members)
    fold = folds(labelled.label, labelled.customer_ids, k, config.seed)
    has_target = bool(quantile_levels(model)) and labelled.target is not None
    scale = target_scale(labelled, config.target_transform) if has_target else 1.0
    oof_logit = np.zeros(len(labelled), dtype=np.float64)
    oof_q = None
    results = []
    started = time.perf_counter()
    for j, member in enumerate(model.members):
        train, held = np.flatnonzero(fold != j), np.flatnonzero(fold == j)
        member_config = replace(config, seed=config.seed * k + j, target_scale=scale)
        result = fit(
            member, labelled.take(train), labelled.take(held), member_config, show_progress
        )
        pred = predict(member, labelled.take(held))
        oof_logit[held] = pred.logit
        if pred.quantiles is not None:  # predict(target_kind="none", scale 1): training units
            oof_q = np.zeros((len(labelled), pred.quantiles.shape[1])) if oof_q is None else oof_q
            oof_q[held] = pred.quantiles
        results.append(result)
        log.debug("member %d/%d: best epoch %d", j + 1, k, result.best_epoch)
    return CrossFit(results, fold, oof_logit, oof_q, scale, time.perf_counter() - started)


def calibrate(
    model: RiskModel,
    logit: np.ndarray,
    label: np.ndarray,
    quantiles: np.ndarray | None = None,
    target: np.ndarray | None = None,
    transform: str = "none",
    scale: float = 1.0,
) -> dict[str, float]:
    """Fit and store Platt scaling (and the conformal margin) from held-out predictions.

    ``logit`` and ``quantiles`` are the uncalibrated held-out outputs (quantiles in training
    units); ``target`` is in its own units and is transformed like the training target.
    Returns what was set, for the manifest.
    """
    a, b = platt(logit, label)
    model.set_calibration(a, b)
    out = {"platt_scale": a, "platt_bias": b}
    taus = quantile_levels(model)
    if quantiles is not None and target is not None and len(taus) > 1:
        y = target_transform(np.asarray(target, dtype=np.float64), transform) / scale
        margin = conformal_margin(quantiles[:, 0], quantiles[:, -1], y, taus[-1] - taus[0])
        model.set_interval_margin(margin)
        out["interval_margin"] = margin
    return out


@dataclass
class Fitted:
    """A trained, calibrated model's honest validation outputs and what training cost."""

    val_probability: np.ndarray  # (n_val,) calibrated; out-of-fold when cross-fitted
    val_logit: np.ndarray  # (n_val,) the same before calibration
    val_quantiles: np.ndarray | None  # (n_val, Q) in target units
    seconds: float
    best_epochs: list[int]
    epochs_run: int
    target_scale: float
    calibration: dict[str, float]
    cross_fitted: bool
    history: list[list[dict[str, float]]]


def fit_model(
    model: RiskModel,
    train: Arrays,
    val: Arrays,
    config: FitConfig,
    calibrate_outputs: bool = True,
    show_progress: bool = False,
) -> Fitted:
    """Train ``model`` the way its config asks, calibrate it, return validation outputs.

    Several members: cross-fit on train + validation (validation outputs are out-of-fold). One
    member: train on ``train``, early-stop on ``val``, calibrate on ``val``. The caller's test
    split is never seen here. The whole model goes to ``config.device`` first: ``fit`` moves
    the one member it trains, and the ensemble's own buffers (calibration) must follow.
    """
    model.to(config.device)
    if len(model.members) > 1:
        labelled = train.concat(val)
        run = cross_fit(model, labelled, config, show_progress)
        held = np.arange(len(train), len(labelled))
        logit_all, q_all, scale = run.oof_logit, run.oof_quantiles, run.target_scale
        label_all, target_all = labelled.label, labelled.target
        seconds, best, epochs = run.seconds, run.best_epochs, run.epochs_run
        history = [r.history for r in run.members]
    else:
        result = fit(model, train, val, config, show_progress)
        pred = predict(model, val)  # identity calibration: raw outputs
        held = np.arange(len(val))
        logit_all, q_all, scale = pred.logit, pred.quantiles, result.target_scale
        label_all, target_all = val.label, val.target
        seconds, best, epochs = result.seconds, [result.best_epoch], result.epochs_run
        history = [result.history]
    calibration: dict[str, float] = {}
    if calibrate_outputs:
        calibration = calibrate(
            model, logit_all, label_all, q_all, target_all, config.target_transform, scale
        )
    a, b = (float(v) for v in model.calibration)
    probability = 1 / (1 + np.exp(-(a * logit_all[held] + b)))
    quantiles = None
    if q_all is not None:
        q = _widened(q_all[held], float(model.interval_margin)) * scale
        quantiles = np.expm1(q) if config.target_transform == "log1p" else q
    return Fitted(
        val_probability=probability,
        val_logit=logit_all[held],
        val_quantiles=quantiles,
        seconds=seconds,
        best_epochs=best,
        epochs_run=epochs,
        target_scale=scale,
        calibration=calibration,
        cross_fitted=len(model.members) > 1,
        history=history,
    )


def _widened(q: np.ndarray, margin: float) -> np.ndarray:
    """numpy twin of the model's conformal widening (``model.network._widen``)."""
    q = q.copy()
    if q.shape[1] > 1:
        low = np.minimum(q[:, 0] - margin, q[:, 1])
        high = np.maximum(q[:, -1] + margin, q[:, -2])
        q[:, 0], q[:, -1] = low, np.maximum(high, low)
    return q


def recalibrate(
    model: RiskModel, data: Arrays, transform: str = "none", scale: float = 1.0
) -> dict[str, float]:
    """Refit the calibration of a trained ``model`` on ``data`` (rows it did not train on).

    The refresh uses it after fine-tuning: under drift the base rate moves, and a Platt fit on
    the newest held-back labels moves the scores with it (ranking unchanged).
    """
    model.set_calibration(1.0, 0.0)
    model.set_interval_margin(0.0)
    raw = predict(model, data, target_kind="none", target_scale=1.0)
    return calibrate(model, raw.logit, data.label, raw.quantiles, data.target, transform, scale)
