"""The fit loop, read top to bottom: seed, batches, loss, early stopping, predict.

``fit`` trains any ``model.build`` variant with AdamW on the training split and keeps the weights
of the epoch that scored best on the validation split (AUC by default, or loss); the test split
is never touched here. Where a domain has a continuous target the quantile heads learn it with
the pinball loss next to the binary cross-entropy of the risk head. Targets may be trained on a
monotone transform (``log1p`` for spend): quantiles commute with monotone maps, so ``expm1`` of
a predicted log-quantile is the quantile in currency.
"""

from __future__ import annotations

import copy
import logging
import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from sklearn.metrics import roc_auc_score
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from crmrisk.model import head_loss, pinball_loss
from crmrisk.model.devices import module_device
from crmrisk.training.data import Arrays, TargetTransform

__all__ = [
    "FitConfig",
    "FitResult",
    "Prediction",
    "fit",
    "predict",
    "quantile_levels",
    "seed_everything",
    "target_scale",
    "target_transform",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitConfig:
    epochs: int
    batch_size: int
    learning_rate: float
    patience: int
    seed: int
    weight_decay: float = 1e-2
    monitor: Literal["auc", "loss"] = "auc"
    quantile_weight: float = 1.0
    target_transform: TargetTransform = "none"
    grad_clip: float = 1.0
    device: str = "cpu"  # a torch device name, resolved (``model.devices.resolve_device``)
    # The target's scale in training units; None computes it from the training rows. Members
    # of one ensemble share the scale of all labelled rows, so their quantiles average.
    target_scale: float | None = None
    # > 0: validate and keep an exponential moving average of the weights (decay per step)
    # instead of the last step's; 0 keeps the plain weights. ``benchmarks/weight_averaging.py``.
    ema_decay: float = 0.0


@dataclass
class FitResult:
    best_epoch: int
    best_score: float
    epochs_run: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    target_scale: float = 1.0


@dataclass(frozen=True)
class Prediction:
    probability: np.ndarray  # (N,)
    quantiles: np.ndarray | None  # (N, Q) in the target's own units
    attention: np.ndarray | None = None  # (N, T)
    logit: np.ndarray | None = None  # (N,)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA) so a run repeats."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def target_transform(values: np.ndarray, kind: TargetTransform) -> np.ndarray:
    if kind == "log1p":
        return np.log1p(np.clip(values, 0.0, None))
    return values


def target_scale(data: Arrays, kind: TargetTransform) -> float:
    """The spread of the transformed target: training units are target / scale."""
    if data.target is None:
        return 1.0
    spread = float(np.nanstd(target_transform(data.target.astype(np.float64), kind)))
    return spread if math.isfinite(spread) and spread > 0 else 1.0


def _target_inverse(values: np.ndarray, kind: TargetTransform) -> np.ndarray:
    if kind == "log1p":
        return np.expm1(values)
    return values


def _batches(n: int, batch_size: int, rng: np.random.Generator | None) -> Iterator[np.ndarray]:
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def _tensors(data: Arrays, index: np.ndarray, device: torch.device):
    events = torch.as_tensor(data.events[index], dtype=torch.float32, device=device)
    mask = torch.as_tensor(data.mask[index], dtype=torch.bool, device=device)
    profile = torch.as_tensor(data.profile[index], dtype=torch.float32, device=device)
    return events, mask, profile


def quantile_levels(model: torch.nn.Module) -> tuple[float, ...]:
    """The quantile levels a model predicts (``RiskModel`` keeps them in its config)."""
    config = getattr(model, "config", None)
    return tuple(getattr(config, "quantiles", None) or getattr(model, "quantiles", ()) or ())


def _prepared_target(data: Arrays, config: FitConfig, scale: float) -> np.ndarray | None:
    if data.target is None:
        return None
    return target_transform(data.target.astype(np.float64), config.target_transform) / scale


def _forward_all(
    model: torch.nn.Module, data: Arrays, batch_size: int, attention: bool
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Raw outputs for every row: probability, quantiles in training units, attention, logit.

    The rows go to the model's own device, wherever training left it.
    """
    device = module_device(model)
    model.eval()
    probs, quants, attns, logits = [], [], [], []
    with torch.inference_mode():
        for index in _batches(len(data), batch_size, None):
            out = model(*_tensors(data, index, device))
            probs.append(out.probability.float().cpu().numpy())
            logits.append(out.logit.float().cpu().numpy())
            if out.quantiles is not None:
                quants.append(out.quantiles.float().cpu().numpy())
            if attention and out.attention is not None:
                attns.append(out.attention.float().cpu().numpy())
    return (
        np.concatenate(probs),
        np.concatenate(quants).astype(np.float64) if quants else None,
        np.concatenate(attns) if attns else None,
        np.concatenate(logits),
    )


def predict(
    model: torch.nn.Module,
    data: Arrays,
    batch_size: int = 2048,
    target_kind: TargetTransform = "none",
    target_scale: float = 1.0,
    attention: bool = False,
) -> Prediction:
    """Probabilities (and quantiles in target units) for every row, in row order, computed on
    the model's device."""
    prob, quant, attn, logit = _forward_all(model, data, batch_size, attention)
    if quant is not None:
        quant = _target_inverse(quant * target_scale, target_kind)
    return Prediction(probability=prob, quantiles=quant, attention=attn, logit=logit)


def _val_score(
    model: torch.nn.Module, val: Arrays, config: FitConfig, scale: float
) -> tuple[float, float]:
    """(score to maximise, validation loss) for early stopping."""
    prob, quant, _, _ = _forward_all(model, val, 2048, False)
    p = np.clip(prob, 1e-7, 1 - 1e-7)
    y = val.label.astype(float)
    loss = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    target = _prepared_target(val, config, scale)
    if quant is not None and target is not None and np.isfinite(target).any():
        taus = np.asarray(quantile_levels(model)).reshape(1, -1)
        known = np.isfinite(target)
        diff = target[known, None] - quant[known]
        loss += config.quantile_weight * float(np.mean(np.maximum(taus * diff, (taus - 1) * diff)))
    if config.monitor == "loss" or y.min() == y.max():
        return -loss, loss
    return float(roc_auc_score(y, prob)), loss


def _averaged(model: torch.nn.Module, decay: float) -> AveragedModel | None:
    if not decay:
        return None
    if not 0.0 < decay < 1.0:
        raise ValueError(f"ema_decay must be in (0, 1), got {decay}")
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def fit(
    model: torch.nn.Module,
    train: Arrays,
    val: Arrays,
    config: FitConfig,
    show_progress: bool = False,
) -> FitResult:
    """Train ``model`` in place; on return it holds the best validation epoch's weights."""
    seed_everything(config.seed)
    device = torch.device(config.device)
    model.to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    rng = np.random.default_rng(config.seed)
    quantiles = quantile_levels(model)
    use_quantiles = bool(quantiles) and train.target is not None
    # Scale the (transformed) target to unit spread so BCE and pinball are comparable.
    scale = 1.0
    if use_quantiles:
        scale = config.target_scale or target_scale(train, config.target_transform)
    target = _prepared_target(train, config, scale) if use_quantiles else None
    labels = train.label.astype(np.float32)

    # The weights validated and kept: the model itself, or a moving average of its steps.
    averaged = _averaged(model, config.ema_decay)
    kept = averaged.module if averaged is not None else model
    best_score, best_epoch, best_state = -math.inf, 0, copy.deepcopy(kept.state_dict())
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    steps = -(-len(train) // config.batch_size)
    progress = Progress(
        TextColumn("[bold]epoch {task.fields[epoch]}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} batches"),
        TextColumn("val {task.fields[val]}"),
        TimeElapsedColumn(),
        disable=not show_progress,
        transient=False,
    )
    with progress:
        task = progress.add_task("train", total=steps, epoch=1, val="-")
        epoch = 0
        for epoch in range(1, config.epochs + 1):
            model.train()
            progress.update(task, completed=0, epoch=epoch)
            total, count = 0.0, 0
            for index in _batches(len(train), config.batch_size, rng):
                out = model(*_tensors(train, index, device))
                y = torch.as_tensor(labels[index], device=device)
                loss = head_loss(out, y)
                if use_quantiles and out.quantiles is not None:
                    t = torch.as_tensor(target[index], dtype=torch.float32, device=device)
                    loss = loss + config.quantile_weight * pinball_loss(out.quantiles, t, quantiles)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                if averaged is not None:
                    averaged.update_parameters(model)
                total += float(loss.detach()) * len(index)
                count += len(index)
                progress.advance(task)
            score, val_loss = _val_score(kept, val, config, scale)
            history.append(
                {"epoch": epoch, "train_loss": total / count, "val_loss": val_loss, "val": score}
            )
            progress.update(task, val=f"{config.monitor}={abs(score):.4f}")
            log.debug("epoch %d train_loss=%.4f val=%.4f", epoch, total / count, score)
            if score > best_score + 1e-5:
                best_score, best_epoch = score, epoch
                best_state = copy.deepcopy(kept.state_dict())
            elif epoch - best_epoch >= config.patience:
                break
    model.load_state_dict(best_state)
    return FitResult(
        best_epoch=best_epoch,
        best_score=best_score,
        epochs_run=epoch,
        seconds=time.perf_counter() - started,
        history=history,
        target_scale=scale,
    )
