"""Classical baselines on the same splits as the neural models, fed flattened arrays: the
paper's tables and ``crmrisk train --compare`` (LightGBM and Optuna come with the ``bench``
extra and are imported when a LightGBM baseline is fitted).

Each customer's padded event sequence ``[T, event_dim]`` is flattened (padding stays zero) and
joined with the mask (so a tree can tell "no event" from "an event of zeros") and the profile.
The experiments feed them the plain linear encoding (``FeatureSpec.numeric = "linear"``: scaled
numbers that extrapolate, plus one-hot categories), what ANCHORS.md's references use.

Protocol, the same as the neural models': everything a model decides (LightGBM's number of
trees, the tuned LightGBM's hyper-parameters) is decided on the validation split; the model
that scores test is then refitted on training + validation rows with those decisions, so it
sees the most recent labelled rows too (on a time-ordered split, the ones closest to test).
Validation probabilities (for the decision threshold) come from the fit on training rows only.

- ``logistic_regression``, ``decision_tree``, ``random_forest``: sklearn defaults.
- ``lightgbm``: defaults, early-stopped on validation AUC (patience 50).
- ``lightgbm_tuned``: a fixed search budget, the same for every dataset: ``TUNING_TRIALS``
  Optuna TPE trials (seeded) over ``_suggest``'s space, each early-stopped on validation AUC;
  the best trial's parameters and tree count are refitted on training + validation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from crmrisk.training.data import DomainData
from crmrisk.training.evaluate import score_split

__all__ = [
    "BASELINES",
    "TUNING_TRIALS",
    "BaselineResult",
    "fit_baseline",
    "fit_lightgbm_quantiles",
    "fit_on_splits",
    "flatten",
    "flatten_splits",
]

log = logging.getLogger(__name__)

TUNING_TRIALS = 40  # the tuned LightGBM's search budget per (dataset, seed)
_MAX_TREES = 3000
_PATIENCE = 50


def flatten(events: np.ndarray, mask: np.ndarray, profile: np.ndarray) -> np.ndarray:
    """``[B, T, E]`` events, ``[B, T]`` mask, ``[B, P]`` profile -> ``[B, T*E + T + P]``."""
    events = np.asarray(events, dtype=np.float32)
    mask = np.asarray(mask, dtype=bool)
    if events.ndim != 3 or mask.shape != events.shape[:2]:
        raise ValueError(f"events {events.shape} and mask {mask.shape} do not line up")
    zeroed = np.where(mask[..., None], events, 0.0)  # padding must never carry values
    return np.concatenate(
        [zeroed.reshape(len(events), -1), mask.astype(np.float32), np.asarray(profile, np.float32)],
        axis=1,
    )


def flatten_splits(data: DomainData) -> dict[str, np.ndarray]:
    """``flatten`` of each of ``data``'s three splits, by split name."""
    return {
        name: flatten(split.events, split.mask, split.profile)
        for name, split in (("train", data.train), ("val", data.val), ("test", data.test))
    }


@dataclass(frozen=True)
class BaselineResult:
    """Probabilities on validation and test, and the seconds the fits took."""

    name: str
    p_val: np.ndarray
    p_test: np.ndarray
    train_seconds: float
    params: dict[str, Any] | None = None  # what was chosen on validation (trees, tuning)


def _logistic(seed: int, threads: int):
    # Scaling keeps lbfgs convergent on raw amounts; C=1 is sklearn's default.
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))


def _tree(seed: int, threads: int):
    return DecisionTreeClassifier(random_state=seed)


def _forest(seed: int, threads: int):
    return RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=threads)


BASELINES: dict[str, Callable[[int, int], object] | None] = {
    "logistic_regression": _logistic,
    "decision_tree": _tree,
    "random_forest": _forest,
    "lightgbm": None,  # fitted by _lightgbm: it needs the validation split
    "lightgbm_tuned": None,  # fitted by _lightgbm_tuned
}


def _lgb() -> Any:
    import lightgbm

    return lightgbm


def _early_stopped(params: dict[str, Any], x_tr, y_tr, x_val, y_val) -> Any:
    lgb = _lgb()
    model = lgb.LGBMClassifier(n_estimators=_MAX_TREES, verbose=-1, **params)
    model.fit(
        x_tr,
        y_tr,
        eval_X=(x_val,),
        eval_y=(y_val,),
        eval_metric="auc",
        callbacks=[lgb.early_stopping(_PATIENCE, first_metric_only=True, verbose=False)],
    )
    return model


def _refit(params: dict[str, Any], trees: int, x, y) -> Any:
    return _lgb().LGBMClassifier(n_estimators=max(trees, 1), verbose=-1, **params).fit(x, y)


def _suggest(trial: Any) -> dict[str, Any]:
    """The tuned LightGBM's search space (the usual ranges of LightGBM tuning guides)."""
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.005, 0.2, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 4, 256, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 2, 200, log=True),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.2, 1.0),
        "subsample": trial.suggest_float("subsample", 0.4, 1.0),
        "subsample_freq": 1,
        "reg_alpha": trial.suggest_float("reg_alpha", 1e-4, 10.0, log=True),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-4, 10.0, log=True),
        "min_split_gain": trial.suggest_float("min_split_gain", 1e-4, 1.0, log=True),
    }


def _lightgbm_tuned(
    x_tr, y_tr, x_val, y_val, seed: int, threads: int, trials: int
) -> tuple[dict[str, Any], int, np.ndarray]:
    """Best parameters, tree count and validation probabilities of an Optuna search."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    fixed = {"random_state": seed, "n_jobs": threads}
    best: dict[str, Any] = {}

    def objective(trial: Any) -> float:
        params = {**_suggest(trial), **fixed}
        model = _early_stopped(params, x_tr, y_tr, x_val, y_val)
        p_val = model.predict_proba(x_val)[:, 1]
        auc = float(roc_auc_score(y_val, p_val))
        if auc > best.get("auc", -1.0):
            best.update(auc=auc, params=params, trees=model.best_iteration_, p_val=p_val)
        return auc

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=trials)
    return best["params"], int(best["trees"]), best["p_val"]


def fit_baseline(
    name: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    x_test: np.ndarray,
    seed: int,
    threads: int = 1,
    trials: int = TUNING_TRIALS,
) -> BaselineResult:
    """Baseline ``name``: decide on validation, refit on train + validation, score test."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; known: {sorted(BASELINES)}")
    started = time.perf_counter()
    x_all, y_all = np.concatenate([x_train, x_val]), np.concatenate([y_train, y_val])
    params: dict[str, Any] | None = None
    if name == "lightgbm":
        fixed = {"random_state": seed, "n_jobs": threads}
        first = _early_stopped(fixed, x_train, y_train, x_val, y_val)
        p_val = first.predict_proba(x_val)[:, 1]
        params = {"trees": int(first.best_iteration_)}
        final = _refit(fixed, params["trees"], x_all, y_all)
    elif name == "lightgbm_tuned":
        chosen, trees, p_val = _lightgbm_tuned(
            x_train, y_train, x_val, y_val, seed, threads, trials
        )
        params = {**chosen, "trees": trees, "trials": trials}
        final = _refit(chosen, trees, x_all, y_all)
    else:
        make = BASELINES[name]
        p_val = make(seed, threads).fit(x_train, y_train).predict_proba(x_val)[:, 1]
        final = make(seed, threads).fit(x_all, y_all)
    p_test = final.predict_proba(x_test)[:, 1]
    return BaselineResult(name, p_val, p_test, time.perf_counter() - started, params)


def fit_lightgbm_quantiles(
    x_train: np.ndarray,
    t_train: np.ndarray,
    x_val: np.ndarray,
    t_val: np.ndarray,
    x_test: np.ndarray,
    quantiles: Sequence[float],
    seed: int,
    threads: int = 1,
) -> np.ndarray:
    """One LightGBM quantile regressor per level; ``[N, Q]`` on test.

    Each level's tree count is early-stopped on validation, then refitted on train + validation.
    The levels are fitted independently, so they can cross; they are reported as is.
    """
    lgb = _lgb()
    x_all, t_all = np.concatenate([x_train, x_val]), np.concatenate([t_train, t_val])
    columns = []
    for tau in quantiles:
        params = {
            "objective": "quantile",
            "alpha": float(tau),
            "random_state": seed,
            "n_jobs": threads,
            "verbose": -1,
        }
        model = lgb.LGBMRegressor(n_estimators=2000, **params)
        model.fit(
            x_train,
            t_train,
            eval_X=(x_val,),
            eval_y=(t_val,),
            eval_metric="quantile",
            callbacks=[lgb.early_stopping(_PATIENCE, verbose=False)],
        )
        trees = max(int(model.best_iteration_ or 1), 1)
        final = lgb.LGBMRegressor(n_estimators=trees, **params).fit(x_all, t_all)
        columns.append(final.predict(x_test))
    return np.stack(columns, axis=1)


def fit_on_splits(
    name: str,
    data: DomainData,
    flat: dict[str, np.ndarray],
    seed: int,
    threads: int = 1,
    trials: int = TUNING_TRIALS,
) -> tuple[BaselineResult, dict[str, dict[str, float]]]:
    """``fit_baseline`` on ``data``'s splits (``flat``: ``flatten_splits(data)``), and its
    validation and test metrics at the threshold chosen on validation."""
    result = fit_baseline(
        name,
        flat["train"],
        data.train.label,
        flat["val"],
        data.val.label,
        flat["test"],
        seed=seed,
        threads=threads,
        trials=trials,
    )
    return result, score_split(data.val.label, result.p_val, data.test.label, result.p_test)
