"""Firing scores -> alert messages, with reason codes: the alert stage, off the scoring step.

The scoring step decides *which* scores fire (``stream/alert_policy.py``, on the in-memory
alert states) and hands them over as ``Firing`` (their windows kept); this stage explains them
(one batched attribution per domain, ``Scorer.explain_windows``) and builds the ``RiskAlert``s,
ranked by expected loss (probability x exposure) where the domain has an exposure, else by
probability. The pipeline runs it in a thread of its own while the next batches are scored,
and commits a batch only after its alerts are acknowledged, so a crash re-fires an alert (same
``alert_id``) rather than losing it.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import numpy as np

from crmrisk.model.attribution import Explanation
from crmrisk.state import CustomerSequence, Windows
from crmrisk.stream.alert_policy import AlertPolicy
from crmrisk.stream.events import RiskAlert
from crmrisk.stream.heap import freeze_heap
from crmrisk.stream.reasons import reason_codes, reason_sentence
from crmrisk.stream.score_encoding import TopEvent, top_event_refs
from crmrisk.stream.scorer import Scorer

__all__ = ["AlertStage", "Alerter", "Firing", "ProcessAlerts", "ThreadAlerts"]


@dataclass
class Firing:
    """The scores of one domain that fire, with the windows they were computed on."""

    domain: str
    scorer: Scorer
    windows: Windows
    customers: list[str]
    event_ids: list[str]
    probability: np.ndarray  # float64 (n,)
    top_events: list[list[TopEvent]]

    def __len__(self) -> int:
        return len(self.customers)


class Alerter:
    def __init__(self, policy: AlertPolicy, risk_types: Mapping[str, str]) -> None:
        self.policy = policy
        self.risk_types = dict(risk_types)

    def alerts(self, firing: Sequence[Firing], explain: bool = True) -> list[RiskAlert]:
        """The alerts of ``firing`` (explained unless ``explain`` is False), ranked. The
        firing scores of one scorer are explained in one pass, whatever batch they came from:
        the attribution pays per pass and per padded row, so fewer, fuller passes cost less."""
        alerts = []
        for f in _by_scorer(firing):
            explanations = f.scorer.explain_windows(f.windows) if explain else [None] * len(f)
            for i, explanation in enumerate(explanations):
                alerts.append(self._alert(f, i, explanation))
        alerts.sort(key=_rank)
        return alerts

    def _alert(self, f: Firing, i: int, explanation: Explanation | None) -> RiskAlert:
        probability = float(f.probability[i])
        w = f.windows
        exposure = None if np.isnan(w.exposure[i]) else float(w.exposure[i])
        loss = None if exposure is None else probability * exposure
        reason = f"probability {probability:.3f} >= threshold {self.policy.threshold:.3f}"
        if loss is not None:
            reason += f"; expected loss {loss:,.0f} on exposure {exposure:,.0f}"
        codes, baseline = [], None
        if explanation is not None:
            codes = reason_codes(explanation, _sequence(w, i))
            baseline = explanation.baseline_probability
            reason += ". " + reason_sentence(codes, probability, baseline)
        return RiskAlert(
            alert_id=f"{f.domain}:{f.customers[i]}:{f.event_ids[i]}",
            customer_id=f.customers[i],
            domain=f.domain,
            risk_type=self.risk_types.get(f.domain, "risk"),
            probability=probability,
            threshold=self.policy.threshold,
            expected_loss=loss,
            model_version=f.scorer.version,
            event_id=f.event_ids[i],
            raised_at=datetime.now(UTC),
            reason=reason,
            top_events=top_event_refs(f.top_events[i]),
            reasons=codes,
            baseline_probability=baseline,
        )


def _by_scorer(firing: Sequence[Firing]) -> list[Firing]:
    """``firing`` merged per scorer (a model reloaded between batches is another scorer)."""
    groups: dict[int, list[Firing]] = {}
    for f in firing:
        groups.setdefault(id(f.scorer), []).append(f)
    return [
        parts[0]
        if len(parts) == 1
        else Firing(
            parts[0].domain,
            parts[0].scorer,
            Windows.concat([p.windows for p in parts]),
            [c for p in parts for c in p.customers],
            [e for p in parts for e in p.event_ids],
            np.concatenate([p.probability for p in parts]),
            [t for p in parts for t in p.top_events],
        )
        for parts in groups.values()
    ]


def _sequence(w: Windows, i: int) -> CustomerSequence:
    """Row ``i`` of ``w`` as a sequence (what reason codes name events by)."""
    length = int(w.lengths[i])
    return CustomerSequence(
        event_ids=w.event_ids(i),
        event_times_ms=w.times_ms[i, :length],
        kinds=[w.kinds[c] for c in w.kind_codes[i, :length].tolist()],
        events=w.events[i, :length],
        profile=w.profile[i] if w.has_profile[i] else None,
        exposure=None if np.isnan(w.exposure[i]) else float(w.exposure[i]),
    )


def _rank(alert: RiskAlert) -> float:
    return -(alert.expected_loss if alert.expected_loss is not None else alert.probability)


class AlertStage(Protocol):
    """What the pipeline's completer calls with the firing scores of a group of batches."""

    async def alerts(self, firing: Sequence[Firing]) -> list[RiskAlert]: ...

    def warm(self, sources: Mapping[str, Path]) -> None: ...

    async def ready(self) -> None:
        """Return once what ``warm`` started is loaded."""

    def close(self) -> None: ...


class ThreadAlerts:
    """The alert stage in a thread of the worker (reason codes' Python shares the GIL)."""

    def __init__(self, alerter: Alerter) -> None:
        self.alerter = alerter
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="explain")

    async def alerts(self, firing: Sequence[Firing]) -> list[RiskAlert]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.alerter.alerts, firing)

    def warm(self, sources: Mapping[str, Path]) -> None:
        """Nothing to load: the scorers explain themselves."""

    async def ready(self) -> None:
        return None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class ProcessAlerts:
    """The alert stage in a process of its own, holding the served models' explainers: the
    scoring loop never waits for the interpreter lock while alerts are explained (integrated
    gradients are mostly Python around small tensor operations). Scorers name their checkpoint
    (``Scorer.source``); the process loads each once. Scores of a scorer without a source are
    explained here, in a thread."""

    def __init__(
        self, alerter: Alerter, top_events: int, reasons: int, steps: int, device: str = "cpu"
    ) -> None:
        self.alerter = alerter
        self._threads = ThreadAlerts(alerter)
        # spawn, not fork: the worker holds an event loop, producer threads and torch state.
        self._pool = ProcessPoolExecutor(
            1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_child_start,
            initargs=(top_events, reasons, steps, device),
        )
        self._warming: list[Future] = []

    def warm(self, sources: Mapping[str, Path]) -> None:
        """Start the process and load these (domain -> checkpoint) now, not at the first alert."""
        self._warming.append(self._pool.submit(_child_load, dict(sources)))

    async def ready(self) -> None:
        while self._warming:
            await asyncio.wrap_future(self._warming.pop())

    def _loading(self) -> bool:
        self._warming = [f for f in self._warming if not f.done()]
        return bool(self._warming)

    async def alerts(self, firing: Sequence[Firing]) -> list[RiskAlert]:
        # Until the process has loaded its models (seconds of CPU at start and after a reload),
        # explain here: an alert queued behind that load would hold up the commit of its batch,
        # and waiting for it before consuming delayed the worker's start.
        if self._loading() or any(f.scorer.source is None for f in firing):
            return await self._threads.alerts(firing)
        payload = [
            (f.domain, str(f.scorer.source), f.windows, f.customers, f.event_ids, f.probability,
             f.top_events)
            for f in firing
        ]  # fmt: skip
        policy = (self.alerter.policy, self.alerter.risk_types)  # as it is now, per call
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, _child_alerts, policy, payload)

    def close(self) -> None:
        self._threads.close()
        self._pool.shutdown(wait=False, cancel_futures=True)


_CHILD: dict = {}


def _child_start(top_events: int, reasons: int, steps: int, device: str) -> None:
    import torch

    # Scores first: where cores are scarce the kernel runs the scoring loop before explanations.
    os.nice(10)
    torch.set_num_threads(1)
    _CHILD.update(top_events=top_events, reasons=reasons, steps=steps, device=device, kits={})


def _child_kit(domain: str, source: str):
    from crmrisk.stream.models import load_domain_model

    kits = _CHILD["kits"]
    if source not in kits:
        import torch

        kits[source] = load_domain_model(
            source, domain, torch.device(_CHILD["device"]), _CHILD["top_events"], _CHILD["reasons"],
            _CHILD["steps"],
        )  # fmt: skip
        freeze_heap()  # as the worker: the models never rescanned by the collector
    return kits[source]


def _child_load(sources: Mapping[str, Path]) -> None:
    for domain, source in sources.items():
        _child_kit(domain, str(source))


def _child_alerts(policy: tuple, payload: list) -> list[RiskAlert]:
    firing = [
        Firing(domain, _child_kit(domain, source).scorer, windows, customers, event_ids,
               probability, top_events)
        for domain, source, windows, customers, event_ids, probability, top_events in payload
    ]  # fmt: skip
    return Alerter(*policy).alerts(firing)
