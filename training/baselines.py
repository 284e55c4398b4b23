"""Classical baselines on the same splits as the neural models, fed flattened arrays.

Each customer's padded event sequence ``[T, event_dim]`` is flattened (padding stays zero) and
joined with the mask (so a tree can tell "no event" from "an event of zeros") and the profile.
Defaults are plain, as in ``ANCHORS.md``'s reference numbers; LightGBM is early-stopped on the
validation split. Every fitted model only ever sees training rows (plus validation for early
stopping); the caller scores validation and test.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

__all__ = [
    "BASELINES",
    "BaselineResult",
    "fit_baseline",
    "fit_lightgbm_quantiles",
    "flatten",
]

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class BaselineResult:
    """Probabilities on validation and test, and the seconds the fit took."""

    name: str
    p_val: np.ndarray
    p_test: np.ndarray
    train_seconds: float
    n_params: int | None = None


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
    "lightgbm": None,  # fitted by _fit_lightgbm: it needs the validation split
}


def _fit_lightgbm(x_tr, y_tr, x_val, y_val, seed: int, threads: int) -> lgb.LGBMClassifier:
    model = lgb.LGBMClassifier(n_estimators=2000, random_state=seed, n_jobs=threads, verbose=-1)
    model.fit(
        x_tr,
        y_tr,
        eval_X=(x_val,),
        eval_y=(y_val,),
        eval_metric="auc",
        callbacks=[lgb.early_stopping(50, first_metric_only=True, verbose=False)],
    )
    return model


def fit_baseline(
    name: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    x_test: np.ndarray,
    seed: int,
    threads: int = 1,
) -> BaselineResult:
    """Fit baseline ``name`` on training rows; return its probabilities on val and test."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; known: {sorted(BASELINES)}")
    started = time.perf_counter()
    if name == "lightgbm":
        model = _fit_lightgbm(x_train, y_train, x_val, y_val, seed, threads)
    else:
        model = BASELINES[name](seed, threads)
        model.fit(x_train, y_train)
    seconds = time.perf_counter() - started
    return BaselineResult(
        name=name,
        p_val=model.predict_proba(x_val)[:, 1],
        p_test=model.predict_proba(x_test)[:, 1],
        train_seconds=seconds,
    )


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
    """One LightGBM quantile regressor per level, early-stopped on validation; ``[N, Q]`` test.

    The levels are fitted independently, so they can cross; they are reported as is.
    """
    columns = []
    for tau in quantiles:
        model = lgb.LGBMRegressor(
            objective="quantile",
            alpha=float(tau),
            n_estimators=2000,
            random_state=seed,
            n_jobs=threads,
            verbose=-1,
        )
        model.fit(
            x_train,
            t_train,
            eval_X=(x_val,),
            eval_y=(t_val,),
            eval_metric="quantile",
            callbacks=[lgb.early_stopping(50, verbose=False)],
        )
        columns.append(model.predict(x_test))
    return np.stack(columns, axis=1)
