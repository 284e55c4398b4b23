"""Incremental refresh: fine-tune the live model on new labels, promote it only if it holds up.

One refresh, in order:

1. Build point-in-time examples for the labels that arrived since the last refresh
   (``training.point_in_time``), encoded with the *champion's* encoder, the one ingest uses, so
   the stored windows stay valid for the new weights.
2. Split by customer (a stable hash): a fixed fraction of customers is never trained on; their
   latest examples form the recent held-out slice (``holdout_size`` rows, newest kept).
3. Fine-tune a copy of the champion on the new training examples plus a bounded random sample of
   older ones (``replay_sample`` drawn from a reservoir of ``replay_pool``), so it learns the
   new without forgetting the old. ``training.train.fit`` runs it, early-stopping on a slice of
   the training customers, never on the held-out slice. Then its calibration (Platt scaling,
   conformal margins) is refitted on the *new* examples of that slice: under drift the base
   rate moves, and the newest labels are the best guess of what comes next.
4. Score champion and challenger on the held-out slice: AUC and calibration error.
5. ``PromotionRule.decide``: promote only when the challenger's AUC is not lower than the
   champion's by more than ``auc_tolerance`` and its calibration error not higher by more than
   ``calibration_tolerance``; otherwise keep the champion. Either way the challenger is
   published to the registry with the decision and its reason, so a rejection can be audited.

What is live is not decided here: ``IncrementalTrainer`` takes the read/move of the pointer as
callables, wired by the entry point (``crmrisk worker train``) to ``state`` and ``stream``.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import torch
from sklearn.metrics import brier_score_loss, roc_auc_score

from lifecycle.registry import ModelRegistry, ModelVersion
from model import RiskModel, build
from stream.events import CustomerEvent, Outcome
from training.crossfit import recalibrate
from training.evaluate import expected_calibration_error
from training.point_in_time import (
    BuildStats,
    Encoder,
    EventLog,
    PointInTimeExample,
    build_examples,
    encode_examples,
)
from training.train import Arrays, FitConfig, FitResult, TargetTransform, fit, predict

__all__ = [
    "Decision",
    "ExampleBuffer",
    "FineTune",
    "IncrementalTrainer",
    "PromotionRule",
    "RefreshPolicy",
    "RefreshReport",
    "SliceMetrics",
    "fine_tune",
    "in_holdout",
    "slice_metrics",
]

log = logging.getLogger(__name__)


# -- when --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RefreshPolicy:
    """Refresh every ``every_s`` seconds or ``every_labels`` new labels, whichever comes first."""

    every_s: float
    every_labels: int
    min_labels: int = 1  # never refresh on fewer new labels than this, whatever the trigger

    def due(self, elapsed_s: float, new_labels: int, drifted: bool = False) -> str | None:
        """The reason a refresh is due now, or None.

        >>> RefreshPolicy(every_s=600, every_labels=1000).due(10, 1000)
        'labels: 1000 new >= 1000'
        >>> RefreshPolicy(every_s=600, every_labels=1000).due(10, 5) is None
        True
        """
        if new_labels < max(self.min_labels, 1):
            return None
        if new_labels >= self.every_labels:
            return f"labels: {new_labels} new >= {self.every_labels}"
        if elapsed_s >= self.every_s:
            return f"timer: {elapsed_s:.0f} s >= {self.every_s:.0f} s"
        if drifted:
            return "drift above threshold"
        return None


# -- whether -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SliceMetrics:
    auc: float
    calibration_error: float
    brier: float
    rows: int
    positives: int

    def as_dict(self, prefix: str = "") -> dict[str, float | None]:
        """The metrics under ``prefix``; an undefined one (AUC on one class: NaN) is None, as
        the registry's manifest is strict JSON."""
        values = {
            "auc": self.auc,
            "calibration_error": self.calibration_error,
            "brier": self.brier,
            "rows": self.rows,
            "positives": self.positives,
        }
        return {f"{prefix}{k}": None if math.isnan(v) else v for k, v in values.items()}


def slice_metrics(model: torch.nn.Module, data: Arrays) -> SliceMetrics:
    """AUC (NaN with one class), calibration error and Brier score of ``model`` on ``data``."""
    p = predict(model, data).probability
    y = data.label.astype(int)
    two_classes = y.min() != y.max()
    return SliceMetrics(
        auc=float(roc_auc_score(y, p)) if two_classes else math.nan,
        calibration_error=expected_calibration_error(y, p),
        brier=float(brier_score_loss(y, p)),
        rows=len(y),
        positives=int(y.sum()),
    )


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


@dataclass(frozen=True)
class PromotionRule:
    """Champion/challenger gate on the held-out slice."""

    auc_tolerance: float
    calibration_tolerance: float
    min_holdout: int
    min_positives: int = 5

    def decide(self, champion: SliceMetrics, challenger: SliceMetrics) -> Decision:
        """Promote unless the challenger is worse beyond tolerance or the slice cannot tell.

        >>> from dataclasses import replace
        >>> rule = PromotionRule(auc_tolerance=0.01, calibration_tolerance=0.02, min_holdout=10)
        >>> old = SliceMetrics(0.75, calibration_error=0.03, brier=0.15, rows=500, positives=99)
        >>> rule.decide(old, replace(old, auc=0.745)).promote
        True
        >>> rule.decide(old, replace(old, auc=0.70)).reason
        'rejected: AUC 0.7000 < champion 0.7500 - tolerance 0.0100'
        """
        negatives = challenger.rows - challenger.positives
        if challenger.rows < self.min_holdout:
            return Decision(
                False,
                f"rejected: held-out slice has {challenger.rows} rows, need {self.min_holdout}",
            )
        if min(challenger.positives, negatives) < self.min_positives:
            return Decision(
                False,
                f"rejected: held-out slice has {challenger.positives} "
                f"positives and {negatives} negatives, need "
                f"{self.min_positives} of each",
            )
        if not challenger.auc >= champion.auc - self.auc_tolerance:  # NaN-safe
            return Decision(
                False,
                f"rejected: AUC {challenger.auc:.4f} < champion "
                f"{champion.auc:.4f} - tolerance {self.auc_tolerance:.4f}",
            )
        limit = champion.calibration_error + self.calibration_tolerance
        if not challenger.calibration_error <= limit:
            return Decision(
                False,
                f"rejected: calibration error "
                f"{challenger.calibration_error:.4f} > champion "
                f"{champion.calibration_error:.4f} + tolerance "
                f"{self.calibration_tolerance:.4f}",
            )
        return Decision(
            True,
            f"promoted: AUC {challenger.auc:.4f} vs champion "
            f"{champion.auc:.4f}, calibration error "
            f"{challenger.calibration_error:.4f} vs "
            f"{champion.calibration_error:.4f}",
        )


# -- on what -----------------------------------------------------------------------------------
def in_holdout(customer_id: str, fraction: float) -> bool:
    """Stable customer-level assignment to the held-out slice (same answer in every process).

    >>> in_holdout("c-1", 0.0), in_holdout("c-1", 1.0)
    (False, True)
    """
    digest = hashlib.blake2b(customer_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < fraction


class ExampleBuffer:
    """New training examples, the recent held-out slice, and a reservoir of older examples."""

    def __init__(
        self, *, holdout_fraction: float, holdout_size: int, replay_pool: int, seed: int
    ) -> None:
        self.holdout_fraction = holdout_fraction
        self.new: list[PointInTimeExample] = []
        self.holdout: deque[PointInTimeExample] = deque(maxlen=holdout_size)
        self._pool: list[PointInTimeExample] = []
        self._pool_size = replay_pool
        self._seen = 0  # examples offered to the reservoir so far
        self._rng = np.random.default_rng(seed)

    def add(self, example: PointInTimeExample) -> None:
        if in_holdout(example.customer_id, self.holdout_fraction):
            self.holdout.append(example)
        else:
            self.new.append(example)

    def add_trained(self, example: PointInTimeExample) -> None:
        """An example an earlier run trained on: to the held-out slice or the reservoir."""
        if in_holdout(example.customer_id, self.holdout_fraction):
            self.holdout.append(example)
        else:
            self.retire([example])

    def replay(self, k: int) -> list[PointInTimeExample]:
        """Up to ``k`` older examples, drawn uniformly from the reservoir."""
        k = min(k, len(self._pool))
        if k == 0:
            return []
        return [self._pool[i] for i in self._rng.choice(len(self._pool), k, replace=False)]

    def retire(self, examples: Sequence[PointInTimeExample]) -> None:
        """Move trained-on examples into the reservoir (reservoir sampling: uniform, bounded)."""
        for example in examples:
            self._seen += 1
            if len(self._pool) < self._pool_size:
                self._pool.append(example)
            else:
                j = int(self._rng.integers(0, self._seen))
                if j < self._pool_size:
                    self._pool[j] = example

    @property
    def pool_size(self) -> int:
        return len(self._pool)


# -- how ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FineTune:
    """Fine-tuning hyper-parameters (smaller steps than training from scratch)."""

    epochs: int
    batch_size: int
    learning_rate: float
    patience: int
    seed: int
    val_fraction: float = 0.1
    device: str = "cpu"  # where the champion is loaded and the challenger trained (resolved)


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


@dataclass
class RefreshReport:
    """What one refresh did (also what goes into the challenger's manifest)."""

    trigger: str
    decision: Decision
    version: str | None  # the challenger's registry version (None when nothing was trained)
    champion_version: str
    champion: SliceMetrics | None
    challenger: SliceMetrics | None
    new_rows: int
    replay_rows: int
    seconds: float
    build: dict[str, int] = field(default_factory=dict)
    data_window: dict[str, Any] = field(default_factory=dict)
    # In memory only (drift references after a promotion): the challenger and what it saw.
    model: torch.nn.Module | None = field(default=None, repr=False)
    training: Arrays | None = field(default=None, repr=False)


Promote = Callable[[str, str, str, str], None]  # (domain, version, reason, expected champion)


class IncrementalTrainer:
    """Keeps the event log and labels of one domain and refreshes its model when due.

    Parameters
    ----------
    domain
        The domain trained here.
    registry
        Where versions are read from and published to.
    current
        ``domain -> live version`` (the pointer; wired to ``state.ModelPointer.current``).
    promote
        Makes a version live, guarded by the expected champion (wired to
        ``stream.model_promoter.ModelPromoter.promote``).
    make_encoder
        ``manifest["encoder"] dict -> encoder`` (``model.FeatureEncoder.from_dict``).
    window
        Events per example: the serving window W.
    replay_sample
        Older examples mixed into each refresh (drawn from the buffer's reservoir).
    history_limit
        Events kept per customer in the point-in-time log.
    """

    def __init__(
        self,
        domain: str,
        *,
        registry: ModelRegistry,
        current: Callable[[str], str | None],
        promote: Promote,
        make_encoder: Callable[[Mapping[str, Any]], Encoder],
        window: int,
        policy: RefreshPolicy,
        rule: PromotionRule,
        tune: FineTune,
        buffer: ExampleBuffer,
        replay_sample: int,
        history_limit: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.domain = domain
        self.registry = registry
        self.current = current
        self._promote = promote
        self.make_encoder = make_encoder
        self.window = window
        self.policy = policy
        self.rule = rule
        self.tune = tune
        self.buffer = buffer
        self.replay_sample = replay_sample
        self.log = EventLog(history_limit)
        self.pending: list[tuple[Outcome, int]] = []  # (label, tries), not yet examples
        self._trained_pending: list[Outcome] = []
        self._fresh_labels = 0
        # Next outcome offset per "topic:partition", set by the reading loop; recorded in each
        # version's data window so that a restarted trainer knows which labels are not new.
        self.position: dict[str, int] = {}
        self.reports: list[RefreshReport] = []
        self._clock = clock
        self._last_refresh = clock()

    # -- input ----------------------------------------------------------------------------------
    def observe_event(self, event: CustomerEvent) -> None:
        if event.domain == self.domain:
            self.log.add(event)

    def observe_outcome(self, outcome: Outcome, *, trained: bool = False) -> None:
        """A new label; ``trained`` marks one an earlier run already trained on (on restart,
        labels before the newest version's recorded offsets): it only feeds replay and the
        held-out slice."""
        if outcome.domain != self.domain:
            return
        if trained:
            self._trained_pending.append(outcome)
        else:
            self.pending.append((outcome, 0))
            self._fresh_labels += 1

    def due(self, drifted: bool = False) -> str | None:
        return self.policy.due(self._clock() - self._last_refresh, self._fresh_labels, drifted)

    # -- the refresh ----------------------------------------------------------------------------
    def refresh(
        self,
        trigger: str,
        transform: Callable[[list[PointInTimeExample]], list[PointInTimeExample]] | None = None,
        *,
        from_scratch: bool = False,
    ) -> RefreshReport:
        """Run one refresh now (see the module docstring); returns what happened.

        ``transform`` rewrites the training examples before fine-tuning (canaries and tests,
        e.g. shuffled labels); the held-out slice is never transformed. ``from_scratch`` trains
        a freshly initialised model of the champion's variant and hyper-parameters on the same
        examples instead of fine-tuning (a full retrain through the same gate).
        """
        started = time.perf_counter()
        self._last_refresh = self._clock()
        champion_version = self.current(self.domain)
        if champion_version is None:
            raise LookupError(f"no live model for {self.domain}: promote one first")
        champion, entry = self.registry.load(self.domain, champion_version, self.tune.device)
        encoder = self.make_encoder(entry.manifest["encoder"])

        stats = BuildStats()
        pending, self.pending = self.pending, []
        self._fresh_labels = 0
        for outcome, tries in pending:
            missing = stats.no_events
            for example in build_examples(self.log, [outcome], self.window, stats):
                self.buffer.add(example)
            # A label can arrive before its customer's events are read: retry it once.
            if stats.no_events > missing and tries < 1:
                self.pending.append((outcome, tries + 1))
        trained, self._trained_pending = self._trained_pending, []
        for example in build_examples(self.log, trained, self.window, BuildStats()):
            self.buffer.add_trained(example)
        new = list(self.buffer.new)
        replay = self.buffer.replay(self.replay_sample if new else 0)
        holdout = list(self.buffer.holdout)
        window_info = _data_window(new, replay, holdout)
        window_info["outcome_offsets"] = dict(self.position)
        if not new or not holdout:
            report = RefreshReport(
                trigger,
                Decision(
                    False, f"skipped: {len(new)} new training examples, {len(holdout)} held out"
                ),
                None,
                champion_version,
                None,
                None,
                len(new),
                len(replay),
                time.perf_counter() - started,
                stats.as_dict(),
                window_info,
            )
            self._record(report)
            return report

        training = new + replay
        if transform is not None:
            training = transform(training)
        start = _fresh_like(champion, entry.manifest, self.tune.seed) if from_scratch else champion
        arrays = encode_examples(training, encoder, self.window)
        transform_kind = entry.manifest.get("target_transform") or "none"
        challenger, fitted = fine_tune(start, arrays, self.tune, transform_kind, len(new))
        held = encode_examples(holdout, encoder, self.window)
        champion_metrics = slice_metrics(champion, held)
        challenger_metrics = slice_metrics(challenger, held)
        decision = self.rule.decide(champion_metrics, challenger_metrics)

        published = self._publish(
            entry,
            challenger,
            decision,
            champion_metrics,
            challenger_metrics,
            fitted,
            window_info,
            trigger,
        )
        self.buffer.new.clear()
        self.buffer.retire(new)
        if decision.promote:
            try:
                self._promote(self.domain, published.version, decision.reason, champion_version)
            # E.g. an operator moved the pointer meanwhile (compare-and-set refused) or the
            # broker is down: the gate passed, the switch did not; the champion stays live.
            except Exception as exc:
                log.error("promoting %s/%s failed: %s", self.domain, published.version, exc)
                decision = Decision(False, f"gate passed, promotion failed: {exc}")
        report = RefreshReport(
            trigger,
            decision,
            published.version,
            champion_version,
            champion_metrics,
            challenger_metrics,
            len(new),
            len(replay),
            time.perf_counter() - started,
            stats.as_dict(),
            window_info,
            model=challenger,
            training=arrays,
        )
        self._record(report)
        return report

    def _publish(
        self,
        champion: ModelVersion,
        challenger: torch.nn.Module,
        decision: Decision,
        champion_metrics: SliceMetrics,
        challenger_metrics: SliceMetrics,
        fitted: FitResult,
        window_info: Mapping[str, Any],
        trigger: str,
    ) -> ModelVersion:
        manifest = dict(champion.manifest)
        for key in ("decision", "created_at", "version", "sha256", "imported_from"):
            manifest.pop(key, None)
        if getattr(challenger, "quantiles", ()):
            manifest["target_scale"] = fitted.target_scale
        metrics = challenger_metrics.as_dict("holdout_")
        metrics.update(champion_metrics.as_dict("champion_holdout_"))
        metrics["fine_tune_epochs"] = fitted.epochs_run
        metrics["fine_tune_seconds"] = round(fitted.seconds, 3)
        return self.registry.publish(
            self.domain,
            challenger,
            manifest,
            parent=champion.version,
            data_window=window_info,
            metrics=metrics,
            decision={
                "promoted": decision.promote,
                "reason": decision.reason,
                "trigger": trigger,
                "decided_at": datetime.now(UTC).isoformat(),
            },
        )

    def _record(self, report: RefreshReport) -> None:
        self.reports.append(report)
        log.info("refresh of %s (%s): %s", self.domain, report.trigger, report.decision.reason)


def _fresh_like(
    champion: torch.nn.Module, manifest: Mapping[str, Any], seed: int
) -> torch.nn.Module:
    """A newly initialised model with the champion's variant and hyper-parameters."""
    hyper = dict(manifest["hyperparameters"])
    hyper.setdefault("members", 1)  # saved before ensembles: one network
    fresh = build(
        manifest["variant"],
        hyper.pop("event_dim"),
        hyper.pop("profile_dim"),
        hyper.pop("quantiles"),
        seed=seed,
        **hyper,
    )
    return fresh.to(next(champion.parameters()).device)


def _data_window(
    new: Sequence[PointInTimeExample],
    replay: Sequence[PointInTimeExample],
    holdout: Sequence[PointInTimeExample],
) -> dict[str, Any]:
    def span(rows: Sequence[PointInTimeExample]) -> list[str | None]:
        if not rows:
            return [None, None]
        times = [x.as_of for x in rows]
        return [min(times).isoformat(), max(times).isoformat()]

    return {
        "new_as_of": span(new),
        "replay_as_of": span(replay),
        "holdout_as_of": span(holdout),
        "new_rows": len(new),
        "replay_rows": len(replay),
        "holdout_rows": len(holdout),
        "new_positive_rate": float(np.mean([x.label for x in new])) if new else None,
    }
