"""What the dashboard shows of one model version and one customer.

``CustomerView`` loads a served model version once (its encoder decodes a window's stored
vectors, its scorer explains a score), computes the training window's score distribution that
drift (PSI) is measured against (once per version, in a thread: the model scores a sample of its
training customers), and answers a customer lookup: recent events decoded, score history, and
the reasons of the latest alert or, without one, reasons computed now.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from crmrisk.dashboard.live import LiveView
from crmrisk.lifecycle.registry import ModelRegistry, RegistryError
from crmrisk.state import CustomerSequenceStore, LatestScoreStore
from crmrisk.stream.events import RiskScore
from crmrisk.stream.models import load_domain_model
from crmrisk.stream.reasons import reason_codes, reason_sentence
from crmrisk.stream.requests import ScoreRequest
from crmrisk.stream.scorer import Scored
from crmrisk.training.datasets import load_domain, to_arrays

__all__ = ["CustomerView"]

log = logging.getLogger(__name__)


class CustomerView:
    """Model versions, their training references and customer lookups for the dashboard."""

    def __init__(
        self,
        config: Any,  # DashboardConfig (dashboard/app.py)
        registry: ModelRegistry,
        windows: CustomerSequenceStore,
        latest: LatestScoreStore,
        live: LiveView,
        live_version: Callable[[str], str | None],
    ) -> None:
        self.config = config
        self.registry, self.windows, self.latest, self.live = registry, windows, latest, live
        self._live_version = live_version
        self._references: dict[tuple[str, str], np.ndarray | None] = {}
        self._kits: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def reference(self, domain: str, version: str) -> np.ndarray | None:
        """The training window's scores (None until computed; computed once, in a thread)."""
        key = (domain, version)
        with self._lock:
            if key in self._references:
                return self._references[key]
            self._references[key] = None
        threading.Thread(target=self._compute_reference, args=key, daemon=True).start()
        return None

    def _compute_reference(self, domain: str, version: str) -> None:
        try:
            kit = self._kit(domain, version)
            c = self.config
            dataset = load_domain(domain, c.data_dir, c.seed)
            records = list(dataset.train)[: c.reference_customers]
            arrays = to_arrays(records, kit.encoder, c.window)
            probability, _, _ = kit.scorer.forward(arrays.events, arrays.mask, arrays.profile)
            with self._lock:
                self._references[(domain, version)] = probability.astype(np.float64)
        except Exception:  # the panel shows no reference; the page stays up
            log.exception("dashboard: no training reference for %s %s", domain, version)

    def _kit(self, domain: str, version: str):
        key = (domain, version)
        if key not in self._kits:
            try:
                path = self.registry.get(domain, version).path
            except RegistryError:
                if domain not in self.config.checkpoints:
                    raise
                path = self.config.checkpoints[domain]  # e.g. the checkpoint a demo serves
            kit = load_domain_model(path, domain, torch.device("cpu"), 3, 5, 16)
            if kit.version != version:
                raise RegistryError(f"{domain} model {version} is neither registered nor served")
            self._kits[key] = kit
        return self._kits[key]

    def customer(self, domain: str, customer: str) -> dict[str, Any] | None:
        """A customer's recent events (decoded), score history and reasons."""
        window = self.windows.read(customer, domain)
        raw = self.latest.read(customer, domain)
        if raw is None and not len(window):
            return None
        latest = RiskScore.model_validate_json(raw) if raw is not None else None
        alert = self.live.latest_alert(domain, customer)
        out: dict[str, Any] = {
            "customer_id": customer,
            "domain": domain,
            "latest": None if latest is None else json.loads(latest.model_dump_json()),
            "history": self.live.score_history(domain, customer),
            "events": [],
            "reasons": [],
            "sentence": None,
        }
        version = latest.model_version if latest is not None else self._live_version(domain)
        kit = None
        with contextlib.suppress(RegistryError, TypeError):
            kit = self._kit(domain, version) if version else None
        out["events"] = _decoded_events(window, kit)
        if alert is not None:
            out["reasons"] = [json.loads(c.model_dump_json()) for c in alert.reasons]
            out["sentence"] = alert.reason
            out["reasons_from"] = f"alert {alert.alert_id}"
        elif latest is not None and kit is not None and len(window):
            request = ScoreRequest(customer, domain, latest.event_id, 0, 0, window)
            scored = Scored(request, latest.probability, None, [], version)
            (explanation,) = kit.scorer.explain([scored])
            codes = reason_codes(explanation, window)
            out["reasons"] = [json.loads(c.model_dump_json()) for c in codes]
            out["sentence"] = reason_sentence(
                codes, latest.probability, explanation.baseline_probability
            )
            out["reasons_from"] = f"computed now by model {version}"
        return out


def _decoded_events(window, kit) -> list[dict[str, Any]]:
    """The window's events, newest first, with their fields decoded from the stored vectors."""
    layout = None if kit is None or kit.scorer.explainer is None else kit.scorer.explainer.layout
    out = []
    for t in range(len(window) - 1, -1, -1):
        fields = {}
        if layout is not None:
            vector = window.events[t]
            fields = {f: layout.decode_event(vector, i) for i, f in enumerate(layout.event_fields)}
        out.append(
            {
                "event_id": window.event_ids[t],
                "kind": window.kinds[t],
                "event_time_ms": int(window.event_times_ms[t]),
                "fields": fields,
            }
        )
    return out
