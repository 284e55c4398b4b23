"""Incremental refresh: fine-tune the live model on new labels, promote it only if it holds up.

One refresh, in order:

1. Build point-in-time examples for the labels that arrived since the last refresh
   (``training.point_in_time``), encoded with the *champion's* encoder, the one ingest uses, so
   the stored windows stay valid for the new weights.
2. Split by customer (a stable hash): a fixed fraction of customers is never trained on; their
   latest examples form the recent held-out slice (``holdout_size`` rows, newest kept).
3. Fine-tune a copy of the champion on the new training examples plus a bounded random sample of
   older ones (``replay_sample`` drawn from a reservoir of ``replay_pool``), so it learns the
   new without forgetting the old. ``training.fine_tune`` runs it, early-stopping on a slice of
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

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import torch

from crmrisk.lifecycle.checkpoint import model_from_manifest
from crmrisk.lifecycle.registry import ModelRegistry, ModelVersion
from crmrisk.stream.events import CustomerEvent, Outcome
from crmrisk.training.data import Arrays
from crmrisk.training.example_buffer import ExampleBuffer
from crmrisk.training.fine_tune import FineTune, fine_tune
from crmrisk.training.fit import FitResult
from crmrisk.training.point_in_time import (
    BuildStats,
    Encoder,
    EventLog,
    PointInTimeExample,
    build_examples,
    encode_examples,
)
from crmrisk.training.promotion_rule import Decision, PromotionRule, SliceMetrics, slice_metrics
from crmrisk.training.refresh_policy import RefreshPolicy

__all__ = ["IncrementalTrainer", "Promote", "RefreshReport"]

log = logging.getLogger(__name__)


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
        ``domain -> live version`` (the pointer; wired to ``lifecycle.ModelPointer.current``).
    promote
        Makes a version live, guarded by the expected champion (wired to
        ``lifecycle.promoter.ModelPromoter.promote``).
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
    fresh = model_from_manifest(manifest, seed=seed)
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
