"""Drift: the population stability index (PSI) of scores and key features vs the training window.

``PSI = sum_b (a_b - e_b) * ln(a_b / e_b)`` over bins ``b``, with ``e`` the share of the
reference (training window) in each bin and ``a`` the share of recent live values. Bins are the
reference's deciles for continuous quantities and its distinct values for discrete ones (a
one-hot or a small code set), so a shift between categories is seen too. Empty bins are floored
at ``1e-4`` so the index stays finite. Rules of thumb: < 0.1 stable, 0.1-0.25 moderate, > 0.25
a real shift: the threshold (``RISK_TRAINING__DRIFT_PSI_THRESHOLD``) sits there by default.

``DriftMonitor`` keeps the latest ``recent`` values per quantity, exports every PSI as the
Prometheus gauge ``crmrisk_drift_psi{domain, quantity}``, and says which quantities drifted,
which the trainer uses to refresh early.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from prometheus_client import Gauge

__all__ = ["DRIFT_PSI", "DriftMonitor", "Reference", "fit_references", "psi"]

_FLOOR = 1e-4

DRIFT_PSI = Gauge(
    "crmrisk_drift_psi",
    "Population stability index of recent values vs the model's training window.",
    ["domain", "quantity"],
)


@dataclass(frozen=True)
class Reference:
    """Bins fitted on a reference sample and the reference's share in each.

    ``categories`` is set for discrete quantities (one bin per distinct value plus one for
    values never seen), ``edges`` (inner decile edges) for continuous ones.
    """

    edges: tuple[float, ...]
    categories: tuple[float, ...]
    expected: tuple[float, ...]

    @classmethod
    def fit(cls, values: np.ndarray, bins: int = 10) -> Reference:
        values = _finite(values)
        if values.size == 0:
            raise ValueError("cannot fit a drift reference on no values")
        distinct = np.unique(values)
        if distinct.size <= bins:
            ref = cls((), tuple(float(v) for v in distinct), ())
        else:
            inner = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))
            ref = cls(tuple(float(e) for e in inner), (), ())
        shares = ref.shares(values)
        return cls(ref.edges, ref.categories, tuple(float(s) for s in shares))

    def shares(self, values: np.ndarray) -> np.ndarray:
        """The fraction of ``values`` in each bin."""
        values = _finite(values)
        if self.categories:
            cats = np.asarray(self.categories)
            index = np.searchsorted(cats, values)
            hit = (index < cats.size) & (cats[np.minimum(index, cats.size - 1)] == values)
            which = np.where(hit, index, cats.size)  # the last bin holds unseen values
            counts = np.bincount(which, minlength=cats.size + 1)
        else:
            which = np.searchsorted(np.asarray(self.edges), values, side="right")
            counts = np.bincount(which, minlength=len(self.edges) + 1)
        return counts / max(values.size, 1)

    def psi(self, values: np.ndarray) -> float:
        actual = np.maximum(self.shares(values), _FLOOR)
        expected = np.maximum(np.asarray(self.expected), _FLOOR)
        return float(np.sum((actual - expected) * np.log(actual / expected)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "edges": list(self.edges),
            "categories": list(self.categories),
            "expected": list(self.expected),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Reference:
        return cls(tuple(d["edges"]), tuple(d["categories"]), tuple(d["expected"]))


def psi(reference: np.ndarray, recent: np.ndarray, bins: int = 10) -> float:
    """PSI of ``recent`` against ``reference``.

    >>> rng = np.random.default_rng(0)
    >>> base = rng.normal(size=20_000)
    >>> round(psi(base, rng.normal(size=20_000)), 3) < 0.01
    True
    >>> psi(base, rng.normal(loc=1.0, size=20_000)) > 0.25
    True
    """
    return Reference.fit(reference, bins).psi(recent)


class DriftMonitor:
    """Recent values per quantity, their PSI against references, exported as gauges.

    Parameters
    ----------
    domain
        Label of the gauges.
    references
        Quantity name (``"score"``, ``"event:bill_amt"`` ...) -> fitted ``Reference``.
    threshold
        PSI above which a quantity counts as drifted.
    recent
        Latest values kept per quantity.
    min_values
        PSI is not reported (nor drift declared) on fewer recent values than this.
    """

    def __init__(
        self,
        domain: str,
        references: Mapping[str, Reference],
        *,
        threshold: float,
        recent: int,
        min_values: int,
    ) -> None:
        self.domain = domain
        self.references = dict(references)
        self.threshold = threshold
        self.min_values = min_values
        self._maxlen = recent
        self._recent = {name: deque(maxlen=recent) for name in self.references}

    def update(self, quantity: str, values: Iterable[float]) -> None:
        """Add recent values of one quantity (unknown quantities are ignored)."""
        window = self._recent.get(quantity)
        if window is not None:
            window.extend(float(v) for v in values)

    def psi(self) -> dict[str, float]:
        """PSI of every quantity with enough recent values; sets the gauges."""
        result = {}
        for name, reference in self.references.items():
            window = self._recent[name]
            if len(window) < self.min_values:
                continue
            value = reference.psi(np.fromiter(window, dtype=float, count=len(window)))
            DRIFT_PSI.labels(self.domain, name).set(value)
            result[name] = value
        return result

    def drifted(self) -> dict[str, float]:
        """Quantities whose PSI exceeds the threshold, with their PSI."""
        return {k: v for k, v in self.psi().items() if v > self.threshold}

    def reset(self, references: Mapping[str, Reference] | None = None) -> None:
        """Start over after a new model goes live (new references, no recent values)."""
        if references is not None:
            self.references = dict(references)
        self._recent = {name: deque(maxlen=self._maxlen) for name in self.references}


def _finite(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=float).ravel()
    return values[np.isfinite(values)]


def fit_references(
    scores: np.ndarray,
    events: np.ndarray,
    mask: np.ndarray,
    names: list[str],
    features: int,
    bins: int = 10,
) -> dict[str, Reference]:
    """References for the score and the ``features`` most variable event columns.

    ``scores`` (N,) are the live model's probabilities on its training window; ``events``
    (N, T, E) with ``mask`` (N, T) the encoded events of that window, ``names`` their columns.
    Quantities are named ``"score"`` and ``"event:<column name>"``.
    """
    references = {"score": Reference.fit(scores, bins)}
    real = events[mask]  # (n_events, E): padding excluded
    if features and real.size:
        spread = real.std(axis=0)
        for column in np.argsort(-spread, kind="stable")[:features]:
            if spread[column] > 0:
                references[f"event:{names[column]}"] = Reference.fit(real[:, column], bins)
    return references
