"""The paper's network trained on one protocol and seed as the tables train it, for the
benchmarks that study one step after training (prior shift, weight averaging)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from benchmarks.tables.experiments import PROTOCOLS
from crmrisk import model as models
from crmrisk.settings import Settings
from crmrisk.training.crossfit import Fitted, fit_model
from crmrisk.training.data import DomainData, load_data
from crmrisk.training.fit import FitConfig, seed_everything

__all__ = ["Trained", "train_ours"]


@dataclass(frozen=True)
class Trained:
    network: Any  # a calibrated RiskModel
    data: DomainData
    fitted: Fitted
    seconds: float


def train_ours(
    protocol: str, seed: int, epochs: int, settings: Settings, **fit_options: Any
) -> Trained:
    """Cross-fitted members, Platt-calibrated out-of-fold (``fit_model``), no quantile heads;
    ``fit_options`` override ``FitConfig`` fields (e.g. ``ema_decay``)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    adapter, options = PROTOCOLS[protocol]
    t = settings.training
    data = load_data(adapter, t.data_dir, seed, settings.redis.window, **options)
    seed_everything(seed)
    network = models.build(
        settings.model.variant,
        event_dim=data.train.event_dim,
        profile_dim=data.train.profile_dim,
        quantiles=(),
    )
    config = FitConfig(
        epochs=epochs,
        batch_size=t.batch_size,
        learning_rate=t.learning_rate,
        patience=t.patience,
        seed=seed,
        **fit_options,
    )
    started = time.perf_counter()
    fitted = fit_model(network, data.train, data.val, config, True)
    return Trained(network, data, fitted, time.perf_counter() - started)
