"""Inference: a batch of score requests -> padded arrays -> one forward pass -> scores.

Sequences are oldest first and right-padded (ARCHITECTURE.md); the model's output for a customer
does not depend on the rest of the batch, so batching changes speed, not scores. The forward
pass itself (pinned buffers, CUDA graphs and the precision on a GPU; the plain call on the CPU,
in float32, which the offline comparison uses) is ``model/serving.py``'s ``ServingRunner``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from crmrisk.model import RiskModel
from crmrisk.model.attribution import Explainer, Explanation
from crmrisk.model.devices import resolve_device
from crmrisk.model.fused import fuse
from crmrisk.model.serving import Precision, ServingRunner
from crmrisk.state import Windows
from crmrisk.stream.requests import ScoreRequest
from crmrisk.stream.score_encoding import TopEvent

__all__ = ["Scored", "ScoredRows", "Scorer", "bucket", "resolve_device", "windows_of"]


@dataclass(frozen=True, slots=True)
class Scored:
    """One score: what was asked, what the model said, which version said it, and why."""

    request: ScoreRequest
    probability: float
    quantiles: dict[str, float] | None
    top_events: list[TopEvent]  # most attended first
    model_version: str


def bucket(n: int) -> int:
    """The padded size for ``n`` rows or slots: a power of two up to 64, then a multiple of 64.

    oneDNN (the CPU LSTM) builds a kernel for every new input shape, ~3 ms each here, and
    keeps a bounded cache of them: with batch sizes and window lengths free, a live stream
    meets new shapes all the time and pays it in its latency tail. Padding to a few sizes
    keeps the shapes few; padded rows and slots cannot change a real customer's output.

    >>> [bucket(n) for n in (1, 3, 6, 33, 64, 65, 500, 512)]
    [1, 4, 8, 64, 64, 128, 512, 512]
    """
    if n <= 64:
        return 1 << max(n - 1, 0).bit_length()
    return -(-n // 64) * 64


def explain_rows(n: int) -> int:
    """Rows an attribution batch of ``n`` is padded to: ``bucket(n)``, but a multiple of 8
    between 8 and 64, because every padded row is integrated over all steps for nothing.

    Still few shapes (11 up to 64 rows) for the oneDNN kernel cache ``bucket`` is about.

    >>> [explain_rows(n) for n in (1, 3, 6, 9, 33, 41, 64, 65)]
    [1, 4, 8, 16, 40, 48, 64, 128]
    """
    return bucket(n) if n <= 8 or n > 64 else -(-n // 8) * 8


def windows_of(requests: Sequence[ScoreRequest], event_dim: int, profile_dim: int) -> Windows:
    """Requests (windows handed over, or read from Redis) as one right-padded ``Windows``."""
    size = len(requests)
    longest = max((len(r.sequence) for r in requests), default=0)
    events = np.zeros((size, longest, event_dim), dtype=np.float32)  # (B, T, E)
    mask = np.zeros((size, longest), dtype=bool)  # (B, T)
    profile = np.zeros((size, profile_dim), dtype=np.float32)  # (B, P)
    times = np.zeros((size, longest), dtype=np.int64)
    codes = np.zeros((size, longest), dtype=np.int32)
    kinds: dict[str, int] = {}
    for i, request in enumerate(requests):
        seq = request.sequence
        length = len(seq)
        events[i, :length] = seq.events
        mask[i, :length] = True
        times[i, :length] = seq.event_times_ms
        codes[i, :length] = [kinds.setdefault(k, len(kinds)) for k in seq.kinds]
        if seq.profile is not None:
            profile[i] = seq.profile
    return Windows(
        events=events,
        mask=mask,
        profile=profile,
        has_profile=np.array([r.sequence.profile is not None for r in requests], bool),
        lengths=mask.sum(axis=1).astype(np.int64),
        times_ms=times,
        kind_codes=codes,
        kinds=list(kinds),
        ids=[b"".join(e.encode() + b"\0" for e in r.sequence.event_ids) for r in requests],
        exposure=np.array(
            [np.nan if r.sequence.exposure is None else r.sequence.exposure for r in requests],
            np.float64,
        ),
    )


def _padded(w: Windows, rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``w``'s arrays padded to ``rows`` rows and a bucketed length; every padding row holds
    one zero event (a row must have one) and no profile."""
    n, longest = w.mask.shape
    length = bucket(max(longest, 1))
    events = np.zeros((rows, length, w.events.shape[2]), np.float32)
    mask = np.zeros((rows, length), bool)
    profile = np.zeros((rows, w.profile.shape[1]), np.float32)
    events[:n, :longest] = w.events
    mask[:n, :longest] = w.mask
    profile[:n] = w.profile
    mask[n:, 0] = True
    return events, mask, profile


@dataclass
class ScoredRows:
    """The model's answers for a ``Windows`` batch, row for row."""

    probability: np.ndarray  # float64 (B,), clipped to [0, 1]
    quantiles: np.ndarray | None  # float64 (B, Q), target units
    top: np.ndarray  # int64 (B, k): positions of the most attended real events (-1: none)
    weights: np.ndarray  # float64 (B, k): their attention weights


class Scorer:
    """Scores batches with one model of one domain.

    Parameters
    ----------
    model
        A ``model.build`` module (``forward(events, mask, profile) -> RiskOutput``).
    version
        The checkpoint's version, stamped on every score.
    quantiles
        The levels of the model's quantile head (empty when it has none).
    device
        Where the forward pass runs.
    top_events
        How many events, by attention weight, explain each score.
    target_transform, target_scale
        How the quantile head's training target was scaled (manifest fields): published
        quantiles are ``inverse(raw x scale)``, in the target's own units.
    explainer
        Reason codes (``model.attribution``) over the *unfused* model, asked for by the alert
        path only (``explain``); None when reasons are off.
    precision, cuda_graphs
        How the forward pass runs on CUDA (``model.serving.ServingRunner``); no effect on CPU.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        version: str,
        event_dim: int,
        profile_dim: int,
        quantiles: Sequence[float],
        device: torch.device,
        top_events: int,
        precision: Precision,
        cuda_graphs: bool,
        target_transform: str = "none",
        target_scale: float = 1.0,
        explainer: Explainer | None = None,
    ) -> None:
        if target_transform not in ("none", "log1p"):
            raise ValueError(
                f"target_transform must be 'none' or 'log1p', got {target_transform!r}"
            )
        self.version = version
        self.event_dim = event_dim
        self.profile_dim = profile_dim
        self.quantile_names = [f"q{round(q * 100)}" for q in quantiles]
        self.device = device
        self.top_events = top_events
        self.target_transform = target_transform
        self.target_scale = target_scale
        self.explainer = explainer
        self.source: Path | None = None  # the checkpoint it was loaded from, when known
        model = model.to(device).eval()
        # The members fused into one network where the family allows (same outputs, faster).
        self._model = (fuse(model) if isinstance(model, RiskModel) else None) or model
        self._runner = ServingRunner(
            self._model, device, precision=precision, cuda_graphs=cuda_graphs
        )

    def forward(
        self, events: np.ndarray, mask: np.ndarray, profile: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """(probability (B,), quantiles (B, Q) in target units | None, attention (B, T))."""
        probability, quantiles, attention = self._runner.run(events, mask, profile)
        if quantiles is not None:
            quantiles = quantiles.astype(np.float64) * self.target_scale
            if self.target_transform == "log1p":
                quantiles = np.expm1(quantiles)
        return probability, quantiles, attention

    def accepts(self, w: Windows) -> bool:
        """Whether windows have this model's widths (a request encoded for another model
        version, e.g. one produced before a reload, does not)."""
        return w.events.shape[2:] == (self.event_dim,) and w.profile.shape[1:] == (
            self.profile_dim,
        )

    def score_windows(self, w: Windows) -> ScoredRows:
        """One forward pass over ``w`` (padded to bucketed shapes) and the top events."""
        n = len(w)
        events, mask, profile = _padded(w, bucket(n))
        probability, quantiles, attention = self.forward(events, mask, profile)
        attention = attention[:n, : w.mask.shape[1]]
        k = min(self.top_events, attention.shape[1])
        ranked = np.argsort(np.where(w.mask, -attention, np.inf), axis=1, kind="stable")[:, :k]
        weights = np.take_along_axis(attention, ranked, axis=1).astype(np.float64)
        real = np.take_along_axis(w.mask, ranked, axis=1)
        return ScoredRows(
            probability=np.clip(probability[:n].astype(np.float64), 0.0, 1.0),
            quantiles=None if quantiles is None or not self.quantile_names else quantiles[:n],
            top=np.where(real, ranked, -1),
            weights=np.where(real, weights, 0.0),
        )

    def explain_windows(self, w: Windows) -> list[Explanation | None]:
        """Reason codes for every row of ``w`` (one attribution pass; None when off).

        Padded like ``score_windows``, with fewer padding rows (``explain_rows``): padding
        rows are all padding events with no profile, so they add nothing but rows.
        """
        if self.explainer is None or not len(w):
            return [None] * len(w)
        n = len(w)
        events, mask, profile = _padded(w, explain_rows(n))
        has_profile = np.zeros(len(mask), dtype=bool)
        has_profile[:n] = w.has_profile
        return list(self.explainer.explain(events, mask, profile, has_profile)[:n])

    def score(self, requests: Sequence[ScoreRequest]) -> list[Scored]:
        """Score requests one batch at a time (tools and tests; the stream scores windows)."""
        if not requests:
            return []
        rows = self.score_windows(windows_of(requests, self.event_dim, self.profile_dim))
        scored = []
        for i, request in enumerate(requests):
            seq = request.sequence
            q = None
            if rows.quantiles is not None:
                q = dict(zip(self.quantile_names, rows.quantiles[i].tolist(), strict=True))
            tops = [
                (seq.event_ids[t], int(seq.event_times_ms[t]), seq.kinds[t], float(wt))
                for t, wt in zip(rows.top[i].tolist(), rows.weights[i].tolist(), strict=True)
                if t >= 0
            ]
            scored.append(Scored(request, float(rows.probability[i]), q, tops, self.version))
        return scored

    def explain(self, scored: Sequence[Scored]) -> list[Explanation | None]:
        """Reason codes for ``scored`` (tools: ``crmrisk score --explain``, the dashboard)."""
        requests = [s.request for s in scored]
        if not requests:
            return []
        return self.explain_windows(windows_of(requests, self.event_dim, self.profile_dim))
