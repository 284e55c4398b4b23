"""Tuning the network on validation with a fixed budget: ``crmrisk train --tune N``.

Optuna's TPE sampler (seeded) draws ``N`` settings from ``suggest``'s space; each trial trains
one member on the training split, early-stopped on validation AUC, and is scored by that
validation AUC. Test rows are never read. The best trial's network widths, dropout, number of
in-network heads, learning rate and weight decay are what the final model (cross-fitted
members, as without tuning) trains with, and the manifest keeps them with every trial under
``tuning``. The tables give the tuned
LightGBM the same kind of budget (``training/baselines.py``, 40 trials).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from crmrisk import model as models
from crmrisk.training.crossfit import fit_model
from crmrisk.training.data import DomainData
from crmrisk.training.evaluate import binary_metrics
from crmrisk.training.fit import FitConfig, seed_everything

__all__ = ["Tuned", "suggest", "tune"]

# Widths scale together from the defaults (``model/config.py``): the QRCNN's channels stay a
# multiple of its four kernels, and the attention and head widths follow the recurrent state.
_WIDTHS = {
    "narrow": {"channels": 8, "summary_dim": 16, "hidden": 12, "d_k": 8, "profile_hidden": 8,
               "head_hidden": 16},
    "default": {"channels": 16, "summary_dim": 32, "hidden": 24, "d_k": 16, "profile_hidden": 16,
                "head_hidden": 32},
    "wide": {"channels": 32, "summary_dim": 64, "hidden": 48, "d_k": 32, "profile_hidden": 32,
             "head_hidden": 64},
}  # fmt: skip


@dataclass(frozen=True)
class Tuned:
    """The chosen network overrides and optimiser settings, and what every trial scored."""

    overrides: dict[str, Any]
    learning_rate: float
    weight_decay: float
    val_auc: float
    trials: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "overrides": self.overrides,
            "learning_rate": self.learning_rate,
            "weight_decay": self.weight_decay,
            "val_auc": self.val_auc,
            "trials": self.trials,
        }


def suggest(trial: Any) -> tuple[dict[str, Any], dict[str, float]]:
    """One draw: (network overrides, optimiser settings)."""
    overrides = dict(_WIDTHS[trial.suggest_categorical("width", list(_WIDTHS))])
    overrides["dropout"] = trial.suggest_float("dropout", 0.0, 0.4)
    # The in-network ensemble's size (``RiskHeads``): one head, or eight sharing the network.
    overrides["head_members"] = trial.suggest_categorical("head_members", [1, 8])
    optimiser = {
        "learning_rate": trial.suggest_float("learning_rate", 3e-4, 1e-2, log=True),
        "weight_decay": trial.suggest_float("weight_decay", 1e-5, 1e-1, log=True),
    }
    return overrides, optimiser


def tune(
    data: DomainData,
    variant: str,
    config: FitConfig,
    trials: int,
    on_trial: Callable[[int, float], None] | None = None,
) -> Tuned:
    """``trials`` Optuna trials on ``data``'s training and validation splits (see the module).

    ``config`` is the fit without tuning (epochs, batch size, patience, seed, device); each
    trial replaces its learning rate and weight decay. ``on_trial(number, val_auc)`` hears each
    finished trial (a progress bar).
    """
    import optuna  # the bench extra; `crmrisk train --tune` checks for it first

    if trials < 1:
        raise ValueError(f"tuning needs at least one trial, got {trials}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    done: list[dict[str, Any]] = []

    def objective(trial: Any) -> float:
        overrides, optimiser = suggest(trial)
        seed_everything(config.seed)
        network = models.build(
            variant,
            event_dim=data.train.event_dim,
            profile_dim=data.train.profile_dim,
            quantiles=(),
            **{**overrides, "members": 1},
        )
        started = time.perf_counter()
        fitted = fit_model(
            network,
            data.train,
            data.val,
            replace(config, monitor="auc", target_transform="none", **optimiser),
            False,
        )
        auc = binary_metrics(data.val.label, fitted.val_probability, 0.5)["auc"]
        auc = float(auc) if np.isfinite(auc) else 0.0
        done.append(
            {**trial.params, "val_auc": auc, "seconds": round(time.perf_counter() - started, 2)}
        )
        if on_trial is not None:
            on_trial(trial.number, auc)
        return auc

    sampler = optuna.samplers.TPESampler(seed=config.seed)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=trials)
    best = study.best_trial
    overrides, optimiser = suggest(optuna.trial.FixedTrial(best.params))
    return Tuned(overrides, optimiser["learning_rate"], optimiser["weight_decay"],
                 float(best.value), done)  # fmt: skip
