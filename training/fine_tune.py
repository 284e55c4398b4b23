"""How a refresh trains: a copy of the champion fine-tuned on new and replayed examples.

``fine_tune`` early-stops on a stable slice of the training customers (never the held-out
slice) and recalibrates the challenger on that slice's newly labelled rows: under drift the base
rate moves, and the newest labels are the best guess of what comes next.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from crmrisk.model import RiskModel
from crmrisk.training.crossfit import recalibrate
from crmrisk.training.data import Arrays, TargetTransform
from crmrisk.training.example_buffer import in_holdout
from crmrisk.training.fit import FitConfig, FitResult, fit

__all__ = ["FineTune", "fine_tune"]


@dataclass(frozen=True)
class FineTune:
    """Fine-tuning hyper-parameters (smaller steps than training from scratch)."""

    epochs: int
    batch_size: int
    learning_rate: float
    patience: int
    seed: int
    device: str  # where the champion is loaded and the challenger trained (resolved)
    val_fraction: float = 0.1


def fine_tune(
    champion: torch.nn.Module,
    train: Arrays,
    config: FineTune,
    target_transform: TargetTransform = "none",
    new_rows: int | None = None,
) -> tuple[torch.nn.Module, FitResult]:
    """A copy of ``champion`` fine-tuned on ``train``; the champion itself is not touched.

    A ``val_fraction`` of the training customers (stable hash) early-stops the fit, and its
    rows among the first ``new_rows`` (the newly labelled ones; all rows when None) recalibrate
    the challenger. ``target_transform`` must be the champion's (its manifest's), so the
    quantile heads keep their meaning; the fit's ``target_scale`` goes into the challenger's
    manifest.
    """
    ids = train.customer_ids or [str(i) for i in range(len(train))]
    is_val = np.array([in_holdout("val:" + c, config.val_fraction) for c in ids])
    if is_val.all() or not is_val.any() or len(set(train.label[is_val].tolist())) < 2:
        is_val = np.zeros(len(train), dtype=bool)
        is_val[:: max(2, int(1 / max(config.val_fraction, 1e-3)))] = True
    challenger = copy.deepcopy(champion)
    result = fit(
        challenger,
        train.take(np.flatnonzero(~is_val)),
        train.take(np.flatnonzero(is_val)),
        FitConfig(
            epochs=config.epochs,
            batch_size=config.batch_size,
            learning_rate=config.learning_rate,
            patience=config.patience,
            seed=config.seed,
            target_transform=target_transform,
            device=config.device,
        ),
    )
    challenger.eval()
    recent = is_val.copy()
    if new_rows is not None:
        recent[new_rows:] = False
    held = train.take(np.flatnonzero(recent))
    if isinstance(challenger, RiskModel) and len(held) and len(set(held.label.tolist())) == 2:
        recalibrate(challenger, held, target_transform, result.target_scale)
    return challenger, result
