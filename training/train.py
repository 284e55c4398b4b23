"""Training, read top to bottom: seed, batches, loss, the fit loop with early stopping, predict.

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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from sklearn.metrics import roc_auc_score

from model import pinball_loss
from model.devices import module_device
from training.evaluate import quantile_metrics, score_split

__all__ = [
    "Arrays",
    "DomainData",
    "FitConfig",
    "FitResult",
    "Prediction",
    "SavedModel",
    "TrainJob",
    "evaluate",
    "fit",
    "load_data",
    "predict",
    "quantile_levels",
    "seed_everything",
    "subsample",
    "target_transform",
    "train_domain",
]

log = logging.getLogger(__name__)

TargetTransform = Literal["none", "log1p"]


@dataclass(frozen=True)
class Arrays:
    """One split as arrays (see ARCHITECTURE.md, "Sequences as arrays")."""

    events: np.ndarray  # (N, T, event_dim) float32
    mask: np.ndarray  # (N, T) bool
    profile: np.ndarray  # (N, profile_dim) float32
    label: np.ndarray  # (N,) 0/1
    target: np.ndarray | None = None  # (N,) continuous target, NaN where unknown
    customer_ids: Sequence[str] | None = None

    def __post_init__(self) -> None:
        n = len(self.label)
        if self.events.ndim != 3 or self.events.shape[0] != n:
            raise ValueError(f"events {self.events.shape} do not match {n} labels")
        if self.mask.shape != self.events.shape[:2]:
            raise ValueError(f"mask {self.mask.shape} does not match events {self.events.shape}")
        if self.profile.ndim != 2 or self.profile.shape[0] != n:
            raise ValueError(f"profile {self.profile.shape} does not match {n} labels")
        if self.target is not None and len(self.target) != n:
            raise ValueError(f"target has {len(self.target)} rows, labels {n}")

    def __len__(self) -> int:
        return len(self.label)

    @property
    def event_dim(self) -> int:
        return int(self.events.shape[2])

    @property
    def profile_dim(self) -> int:
        return int(self.profile.shape[1])

    def concat(self, other: Arrays) -> Arrays:
        """These rows, then ``other``'s (same event slots and widths)."""
        if self.events.shape[1:] != other.events.shape[1:]:
            raise ValueError(f"events {self.events.shape} and {other.events.shape} do not stack")
        if (self.target is None) != (other.target is None):
            raise ValueError("one of the arrays has a target and the other has none")
        ids = None
        if self.customer_ids is not None and other.customer_ids is not None:
            ids = [*self.customer_ids, *other.customer_ids]
        return Arrays(
            events=np.concatenate([self.events, other.events]),
            mask=np.concatenate([self.mask, other.mask]),
            profile=np.concatenate([self.profile, other.profile]),
            label=np.concatenate([self.label, other.label]),
            target=None if self.target is None else np.concatenate([self.target, other.target]),
            customer_ids=ids,
        )

    def take(self, index: np.ndarray) -> Arrays:
        """Rows ``index`` (used for subsampling in quick runs)."""
        return replace(
            self,
            events=self.events[index],
            mask=self.mask[index],
            profile=self.profile[index],
            label=self.label[index],
            target=None if self.target is None else self.target[index],
            customer_ids=None
            if self.customer_ids is None
            else [self.customer_ids[i] for i in index],
        )


@dataclass(frozen=True)
class DomainData:
    """One protocol's splits as arrays plus what a manifest needs to know about them."""

    train: Arrays
    val: Arrays
    test: Arrays
    target_kind: TargetTransform = "none"  # what the quantile heads train on
    encoder: dict | None = None  # FeatureEncoder.to_dict(), fitted on training customers
    window: dict | None = None  # data window (split rule, dates) for the manifest


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

    best_score, best_epoch, best_state = -math.inf, 0, copy.deepcopy(model.state_dict())
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
                loss = torch.nn.functional.binary_cross_entropy_with_logits(out.logit, y)
                if use_quantiles and out.quantiles is not None:
                    t = torch.as_tensor(target[index], dtype=torch.float32, device=device)
                    loss = loss + config.quantile_weight * pinball_loss(out.quantiles, t, quantiles)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                total += float(loss.detach()) * len(index)
                count += len(index)
                progress.advance(task)
            score, val_loss = _val_score(model, val, config, scale)
            history.append(
                {"epoch": epoch, "train_loss": total / count, "val_loss": val_loss, "val": score}
            )
            progress.update(task, val=f"{config.monitor}={abs(score):.4f}")
            log.debug("epoch %d train_loss=%.4f val=%.4f", epoch, total / count, score)
            if score > best_score + 1e-5:
                best_score, best_epoch = score, epoch
                best_state = copy.deepcopy(model.state_dict())
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


def subsample(data: DomainData, limit: int | None, seed: int) -> DomainData:
    """At most ``limit`` customers per split, drawn without replacement (quick runs only)."""
    if not limit:
        return data
    rng = np.random.default_rng(seed)

    def cut(a: Arrays) -> Arrays:
        if len(a) <= limit:
            return a
        return a.take(np.sort(rng.choice(len(a), limit, replace=False)))

    return replace(data, train=cut(data.train), val=cut(data.val), test=cut(data.test))


def _pad(arrays: Any, steps: int) -> Arrays:
    """``training.datasets`` arrays -> ``Arrays`` right-padded to ``steps`` event slots."""
    n, t, e = arrays.events.shape
    events = np.zeros((n, steps, e), dtype=np.float32)
    events[:, :t] = arrays.events
    mask = np.zeros((n, steps), dtype=bool)
    mask[:, :t] = arrays.mask
    return Arrays(
        events=events,
        mask=mask,
        profile=np.asarray(arrays.profile, dtype=np.float32),
        label=np.asarray(arrays.label),
        target=arrays.target,
        customer_ids=arrays.customer_ids,
    )


def load_data(
    domain: str,
    data_dir: Path,
    seed: int,
    window: int,
    numeric: Literal["ple", "linear"] | None = None,
    **options: Any,
) -> DomainData:
    """The domain's splits as arrays, encoded by a FeatureEncoder fitted on training customers.

    All three splits share one number of event slots (the longest kept sequence, at most
    ``window``), so flattened baselines see the same columns everywhere. A domain with a
    continuous target (spend) trains its quantile heads on ``log1p`` of it. ``numeric``
    overrides the spec's numeric encoding (the classical baselines read ``"linear"``).
    """
    from training.datasets import fit_encoder, load_domain, to_arrays

    dataset = load_domain(domain, Path(data_dir), seed, **options)
    spec = dataset.spec if numeric is None else replace(dataset.spec, numeric=numeric)
    encoder = fit_encoder(spec, dataset.train)
    raw = {name: to_arrays(records, encoder, window) for name, records in dataset.splits().items()}
    steps = max(a.events.shape[1] for a in raw.values())
    return DomainData(
        train=_pad(raw["train"], steps),
        val=_pad(raw["val"], steps),
        test=_pad(raw["test"], steps),
        target_kind="log1p" if dataset.has_target else "none",
        encoder=encoder.to_dict(),
        window=dict(dataset.info),
    )


# -- one domain, end to end: load, build, fit, evaluate, save ---------------------------------


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
    monitor: Literal["auc", "loss"] = "auc"
    threads: int = 2
    max_rows: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)
    device: str = "cpu"


@dataclass(frozen=True)
class SavedModel:
    path: Path
    version: str
    metrics: dict[str, Any]
    fit_seconds: float


def evaluate(
    model: torch.nn.Module,
    data: DomainData,
    target_kind: TargetTransform,
    target_scale: float,
    held_out: Any = None,
) -> dict[str, Any]:
    """Validation and test metrics; the decision threshold comes from validation only.

    ``held_out`` (a ``training.crossfit.Fitted``) gives the validation outputs of networks that
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


def train_domain(job: TrainJob, show_progress: bool = False) -> SavedModel:
    """Load ``job.domain``, train ``job.variant``, evaluate, and publish it to the registry.

    The model becomes the next version (``v0001``, ``v0002`` ...) of the domain in the registry
    under ``job.models_dir``, the one store the workers and ``crmrisk models`` read; making it
    live is a separate step (``crmrisk train --promote`` or ``crmrisk models promote``).
    """
    import model as models  # the model package, not the torch module below
    from lifecycle.registry import ModelRegistry

    data = load_data(job.domain, job.data_dir, job.seed, job.window, **job.options)
    data = subsample(data, job.max_rows, job.seed)
    with_quantiles = data.train.target is not None and bool(job.quantiles)
    seed_everything(job.seed)
    network = models.build(
        job.variant,
        event_dim=data.train.event_dim,
        profile_dim=data.train.profile_dim,
        quantiles=job.quantiles if with_quantiles else (),
    )
    config = FitConfig(
        epochs=job.epochs,
        batch_size=job.batch_size,
        learning_rate=job.learning_rate,
        patience=job.patience,
        seed=job.seed,
        monitor=job.monitor,
        target_transform=data.target_kind if with_quantiles else "none",
        device=job.device,
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
    from training.crossfit import fit_model  # (it builds on this module)

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
        },
    }
    manifest["training"]["device"] = job.device
    entry = ModelRegistry(job.models_dir).publish(job.domain, network.cpu(), _json_safe(manifest))
    return SavedModel(
        path=entry.path, version=entry.version, metrics=metrics, fit_seconds=fitted.seconds
    )
