"""The trainer's reading loop: records in, refreshes out, drift watched on the way.

``TrainerLoop`` reads three topics from one ``RecordSource`` (``training.record_source``; the
composition root wires one backed by the broker, with no consumer group: every trainer
rebuilds its own point-in-time log):

- ``crm.events`` from the earliest retained offset, into the trainer's ``EventLog``;
- ``crm.outcomes`` from the earliest offset; labels below the offsets recorded in the newest
  registry version's data window were trained on by an earlier run and only feed replay and the
  held-out slice, the rest are new;
- ``risk.scores`` from the end (live scores of the domain, for score drift only).

``step`` polls once, then refreshes if the policy says so (labels, timer, or drift when
``drift_retrain``), but never before the log has caught up with the events that existed at
start, so an early label cannot be built from a half-read history. Drift references are fitted
at the first refresh (the champion on that window) and refitted on every promotion (the new model
on what it was trained on); until then no drift is reported.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from crmrisk.stream.events import InvalidEvent, RiskScore, parse_event, parse_outcome
from crmrisk.training.drift import DriftMonitor, fit_references
from crmrisk.training.fit import predict
from crmrisk.training.incremental_trainer import IncrementalTrainer, RefreshReport
from crmrisk.training.record_source import Partition, Record, RecordSource

__all__ = ["TrainerLoop"]

log = logging.getLogger(__name__)


class TrainerLoop:
    """Feeds one ``IncrementalTrainer`` from a record source and runs its refreshes.

    Parameters
    ----------
    trainer
        The domain's trainer.
    source
        The three topics' records; the loop closes it.
    events_topic, outcomes_topic
        ``crm.events`` and ``crm.outcomes``; records of any other topic are live scores
        (``risk.scores``, for score drift).
    drift
        The domain's monitor (None: no drift); its references are (re)fitted on promotions.
    drift_features
        Event columns watched, the most variable of the training window.
    drift_retrain
        Let drift above the threshold trigger a refresh.
    """

    def __init__(
        self,
        trainer: IncrementalTrainer,
        *,
        source: RecordSource,
        events_topic: str,
        outcomes_topic: str,
        drift: DriftMonitor | None,
        drift_features: int,
        drift_retrain: bool,
    ) -> None:
        self.trainer = trainer
        self._events_topic = events_topic
        self._outcomes_topic = outcomes_topic
        self.drift = drift
        self._drift_features = drift_features
        self._drift_retrain = drift_retrain
        self.invalid = 0  # unreadable messages skipped (the ingest path dead-letters them)
        self._source = source
        self._resume = self._resume_offsets()
        self._encoder: Any = None
        self._encoder_version: str | None = None

    # -- setup ----------------------------------------------------------------------------------
    def _resume_offsets(self) -> dict[str, int]:
        latest = self.trainer.registry.latest(self.trainer.domain)
        if latest is None:
            return {}
        return {k: int(v) for k, v in latest.data_window.get("outcome_offsets", {}).items()}

    @property
    def caught_up(self) -> bool:
        """The event log holds every event that existed when the loop started."""
        return self._source.caught_up

    # -- the loop -------------------------------------------------------------------------------
    def poll(self, timeout_ms: int = 500, max_records: int = 5000) -> int:
        """Read one batch from all topics; returns how many records were read."""
        batch = self._source.poll(timeout_ms, max_records)
        count = 0
        for tp, records in batch.items():
            count += len(records)
            if tp.topic == self._events_topic:
                self._take_events(records)
            elif tp.topic == self._outcomes_topic:
                self._take_outcomes(tp, records)
            else:
                self._take_scores(records)
        return count

    def step(self, timeout_ms: int = 500) -> RefreshReport | None:
        """Poll once, then refresh if due; returns the refresh's report, if one ran."""
        self.poll(timeout_ms)
        if not self.caught_up:
            return None
        drifted = bool(self._drift_retrain and self.drift and self.drift.drifted())
        trigger = self.trainer.due(drifted)
        if trigger is None:
            return None
        report = self.trainer.refresh(trigger)
        self._refit_drift(report)
        return report

    def run(
        self,
        stop: threading.Event,
        timeout_ms: int = 500,
        on_step: Callable[[], None] | None = None,
    ) -> None:
        """Step until ``stop``; ``on_step`` after each (what the health endpoint watches)."""
        while not stop.is_set():
            self.step(timeout_ms)
            if on_step is not None:
                on_step()

    def close(self) -> None:
        self._source.close()

    # -- records --------------------------------------------------------------------------------
    def _take_events(self, records: Sequence[Record]) -> None:
        watched = []
        for record in records:
            try:
                event = parse_event(record.value)
            except InvalidEvent:
                self.invalid += 1
                continue
            self.trainer.observe_event(event)
            if event.domain == self.trainer.domain and event.kind != "profile":
                watched.append(event)
        if watched and self.drift is not None and len(self.drift.references) > 1:
            self._watch_features(watched)

    def _take_outcomes(self, tp: Partition, records: Sequence[Record]) -> None:
        key = f"{tp.topic}:{tp.partition}"
        resume = self._resume.get(key, 0)
        for record in records:
            try:
                outcome = parse_outcome(record.value)
            except InvalidEvent:
                self.invalid += 1
                continue
            self.trainer.observe_outcome(outcome, trained=record.offset < resume)
        self.trainer.position[key] = records[-1].offset + 1

    def _take_scores(self, records: Sequence[Record]) -> None:
        if self.drift is None:
            return
        values = []
        for record in records:
            try:
                score = RiskScore.model_validate_json(record.value)
            except ValueError:
                self.invalid += 1
                continue
            if score.domain == self.trainer.domain:
                values.append(score.probability)
        self.drift.update("score", values)

    # -- drift ----------------------------------------------------------------------------------
    def _watch_features(self, events: list[Any]) -> None:
        version = self.trainer.current(self.trainer.domain)
        if version is None:
            return
        if version != self._encoder_version:
            manifest = self.trainer.registry.get(self.trainer.domain, version).manifest
            self._encoder = self.trainer.make_encoder(manifest["encoder"])
            self._encoder_version = version
        encoded = self._encoder.encode_events_many(
            [e.kind for e in events], [e.fields for e in events]
        )
        names = self._encoder.event_feature_names()
        for name in self.drift.references:
            if name.startswith("event:"):
                self.drift.update(name, encoded[:, names.index(name[len("event:") :])])

    def _refit_drift(self, report: RefreshReport) -> None:
        """References from what the live model was trained on: the promoted challenger's
        window; or, while none exists yet in this run, the champion on the first window seen
        (its own training data is not in the stream)."""
        if self.drift is None or report.model is None or report.training is None:
            return
        if report.decision.promote:
            live = report.model
        elif not self.drift.references:
            live, _ = self.trainer.registry.load(self.trainer.domain, report.champion_version)
        else:
            return
        data = report.training
        scores = predict(live, data).probability
        names = self.trainer.make_encoder(
            self.trainer.registry.get(self.trainer.domain, report.version).manifest["encoder"]
        ).event_feature_names()
        self.drift.reset(
            fit_references(scores, data.events, data.mask, names, self._drift_features)
        )
        log.info("drift references refitted on %d examples", len(data))
