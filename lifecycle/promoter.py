"""Model changes: the pointer moves, then ``risk.model-updates`` announces them.

``ModelPromoter`` moves a domain's pointer (``lifecycle.ModelPointer``: a journal beside the
registry, the source of truth, copied to Redis) or starts and ends a trial (shadow or canary),
then announces the change on ``risk.model-updates`` (``lifecycle.ModelUpdate``, keyed by
domain). Workers follow the pointer, not the messages (``lifecycle/watcher.py``): an
announcement only wakes them sooner.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from kafka import KafkaProducer

from crmrisk.lifecycle.announcements import ModelUpdate
from crmrisk.lifecycle.journal import ANY, PointerChange
from crmrisk.lifecycle.pointer import ModelPointer
from crmrisk.lifecycle.registry import ModelRegistry, ModelVersion
from crmrisk.lifecycle.trials import Trial, TrialEnd, TrialOutcome

__all__ = ["ModelPromoter", "announcement_producer"]


def announcement_producer(kafka_config: Mapping[str, Any], client_id: str) -> KafkaProducer:
    """A producer for ``ModelPromoter``: ``kafka_config`` is kafka-python's connection options
    (``KafkaSettings.client_config()``); every announcement waits for all in-sync replicas."""
    return KafkaProducer(**kafka_config, client_id=client_id, acks="all")


class ModelPromoter:
    """Makes a registry version live: pointer first (atomic, guarded), then the announcement."""

    def __init__(
        self,
        registry: ModelRegistry,
        pointer: ModelPointer,
        producer: KafkaProducer,
        topic: str,
    ) -> None:
        self._registry = registry
        self._pointer = pointer
        self._producer = producer
        self._topic = topic

    def promote(
        self, domain: str, version: str, reason: str, *, expected: str | None = ANY
    ) -> PointerChange:
        """Point ``domain`` at ``version`` (which must verify) and announce it.

        ``expected`` guards against a concurrent move (see ``ModelPointer.set``).
        """
        entry = self._registry.verify(domain, version)
        change = self._pointer.set(domain, version, reason, expected=expected)
        self.announce(change, entry)
        trial = self._pointer.trial(domain)
        if trial is not None and trial.version == version:  # the challenger won: trial over
            self.end_trial(domain, "promoted", reason, version=version)
        return change

    def start_trial(
        self,
        domain: str,
        version: str,
        mode: Literal["shadow", "canary"],
        reason: str,
        percent: float = 0.0,
    ) -> Trial:
        """Put ``version`` on trial beside the live model and announce it.

        Refused (``ValueError`` or a registry error, naming what to fix) for a version not in
        ``domain``'s registry, one whose hash does not verify, the live version itself, or one
        with another feature encoder: windows are stored encoded by the live model's encoder,
        so such a challenger would need windows of its own (not supported: train it with the
        same feature spec, or promote it after an offline evaluation).
        """
        entry = self._registry.verify(domain, version)
        live = self._pointer.current(domain)
        if live is None:
            raise ValueError(f"{domain} has no live version: promote one before a trial")
        if entry.manifest.get("encoder") != self._registry.get(domain, live).manifest.get(
            "encoder"
        ):
            raise ValueError(
                f"{domain}/{version} encodes events differently from the live {live}: a trial "
                "scores the windows stored for the live model, so it needs the same feature "
                "encoder (same spec and training vocabulary)"
            )
        trial = self._pointer.start_trial(domain, mode, version, reason, percent=percent)
        self._send(
            ModelUpdate(
                domain=domain,
                version=version,
                previous=live,
                reason=reason,
                changed_at=trial.started_at,
                kind="trial_start",
                mode=mode,
                percent=trial.percent,
            )
        )
        return trial

    def end_trial(
        self,
        domain: str,
        outcome: TrialOutcome,
        reason: str,
        *,
        version: str | None = None,
    ) -> TrialEnd | None:
        """End ``domain``'s trial (of ``version``, if given) and announce it; None if none ran."""
        end = self._pointer.end_trial(domain, outcome, reason, version=version)
        if end is not None:
            self._send(
                ModelUpdate(
                    domain=domain,
                    version=end.trial.version,
                    previous=self._pointer.current(domain),
                    reason=reason,
                    changed_at=end.ended_at,
                    kind="trial_end",
                    mode=end.trial.mode,
                    percent=end.trial.percent,
                    outcome=outcome,
                )
            )
        return end

    def rollback(self, domain: str, version: str | None = None) -> PointerChange:
        """Go back to ``version``, or to the version live before the current one."""
        target = version or self._pointer.previous(domain)
        if target is None:
            raise ValueError(f"{domain} has no previous version to roll back to")
        current = self._pointer.current(domain)
        return self.promote(domain, target, f"rollback from {current}", expected=current)

    def announce(self, change: PointerChange, entry: ModelVersion) -> None:
        numeric = {k: float(v) for k, v in entry.metrics.items() if _is_number(v)}
        update = ModelUpdate(
            domain=change.domain,
            version=change.version,
            previous=change.previous,
            reason=change.reason,
            changed_at=change.changed_at,
            metrics=numeric,
        )
        self._send(update)

    def _send(self, update: ModelUpdate) -> None:
        # The journal already moved: a lost announcement only delays workers until their next
        # periodic check, so waiting for the ack here is for the caller's feedback, not safety.
        self._producer.send(self._topic, key=update.key, value=update.to_bytes()).get(timeout=30)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
