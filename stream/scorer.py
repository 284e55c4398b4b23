"""Inference: a batch of score requests -> padded arrays -> one forward pass -> scores.

Sequences are oldest first and right-padded (ARCHITECTURE.md); the model's output for a customer
does not depend on the rest of the batch, so batching changes speed, not scores. On CUDA the
forward pass runs under autocast (bfloat16); on CPU in float32, which the offline comparison uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from model import RiskModel
from model.attribution import Explainer, Explanation
from model.fused import fuse
from stream.requests import ScoreRequest
from stream.score_encoding import TopEvent

__all__ = ["Scored", "Scorer", "pad", "resolve_device"]


@dataclass(frozen=True, slots=True)
class Scored:
    """One score: what was asked, what the model said, which version said it, and why."""

    request: ScoreRequest
    probability: float
    quantiles: dict[str, float] | None
    top_events: list[TopEvent]  # most attended first
    model_version: str


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA when present, else CPU; anything else is passed to ``torch.device``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


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


def pad(
    requests: Sequence[ScoreRequest], event_dim: int, profile_dim: int, buckets: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Right-pad windows into ``events (B, T, E)``, ``mask (B, T)``, ``profile (B, P)``.

    T is the longest window in the batch and B the number of requests, or with ``buckets``
    both rounded up by ``bucket`` (the extra rows are all padding); a missing profile is zeros.
    """
    size = len(requests)
    longest = max(len(r.sequence) for r in requests)
    if buckets:
        size, longest = bucket(size), bucket(longest)
    events = np.zeros((size, longest, event_dim), dtype=np.float32)  # (B, T, E)
    mask = np.zeros((size, longest), dtype=bool)  # (B, T)
    profile = np.zeros((size, profile_dim), dtype=np.float32)  # (B, P)
    for i, request in enumerate(requests):
        seq = request.sequence
        length = len(seq)
        events[i, :length] = seq.events
        mask[i, :length] = True
        if seq.profile is not None:
            profile[i] = seq.profile
    return events, mask, profile


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
        model = model.to(device).eval()
        # The members fused into one network where the family allows (same outputs, faster).
        self._model = (fuse(model) if isinstance(model, RiskModel) else None) or model

    @torch.inference_mode()
    def forward(
        self, events: np.ndarray, mask: np.ndarray, profile: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """(probability (B,), quantiles (B, Q) in target units | None, attention (B, T))."""
        to = self.device
        e = torch.from_numpy(events).to(to, non_blocking=True)
        m = torch.from_numpy(mask).to(to, non_blocking=True)
        p = torch.from_numpy(profile).to(to, non_blocking=True)
        if to.type == "cuda":
            with torch.autocast("cuda", dtype=torch.bfloat16):
                out = self._model(e, m, p)
        else:
            out = self._model(e, m, p)
        quantiles = None
        if out.quantiles is not None:
            quantiles = out.quantiles.float().cpu().numpy().astype(np.float64) * self.target_scale
            if self.target_transform == "log1p":
                quantiles = np.expm1(quantiles)
        return (
            out.probability.float().cpu().numpy(),
            quantiles,
            out.attention.float().cpu().numpy(),
        )

    def accepts(self, request: ScoreRequest) -> bool:
        """Whether the request's vectors have this model's widths (a request encoded for
        another model version, e.g. one produced before a reload, does not)."""
        seq = request.sequence
        widths_ok = seq.events.ndim == 2 and seq.events.shape[1] == self.event_dim
        profile_ok = seq.profile is None or seq.profile.shape == (self.profile_dim,)
        return widths_ok and profile_ok

    def score(self, requests: Sequence[ScoreRequest]) -> list[Scored]:
        if not requests:
            return []
        events, mask, profile = pad(requests, self.event_dim, self.profile_dim, buckets=True)
        mask[len(requests) :, 0] = True  # padding rows: one zero event, so every row is valid
        probability, quantiles, attention = self.forward(events, mask, profile)
        n = len(requests)
        probability, attention = probability[:n], attention[:n]
        quantiles = None if quantiles is None else quantiles[:n]
        tops = self._top_positions(requests, attention)
        scored = []
        for i, request in enumerate(requests):
            q = None
            if quantiles is not None and self.quantile_names:
                q = dict(zip(self.quantile_names, quantiles[i].tolist(), strict=True))
            seq = request.sequence
            times = seq.event_times_ms
            scored.append(
                Scored(
                    request=request,
                    probability=min(max(float(probability[i]), 0.0), 1.0),
                    quantiles=q,
                    top_events=[
                        (seq.event_ids[t], int(times[t]), seq.kinds[t], float(attention[i, t]))
                        for t in tops[i][: len(seq)]
                    ],
                    model_version=self.version,
                )
            )
        return scored

    def explain(self, scored: Sequence[Scored]) -> list[Explanation | None]:
        """Reason codes for ``scored`` (batched: one attribution pass; None when off).

        Padded to bucketed shapes like ``score``, with fewer padding rows (``explain_rows``);
        padding rows are all padding events with no profile, so they add nothing but rows.
        """
        if self.explainer is None or not scored:
            return [None] * len(scored)
        requests = [s.request for s in scored]
        events, mask, profile = pad(requests, self.event_dim, self.profile_dim, buckets=True)
        n = len(requests)
        rows = explain_rows(n)  # <= bucket(n)
        events, mask, profile = events[:rows], mask[:rows], profile[:rows]
        mask[n:, 0] = True
        has_profile = np.zeros(len(mask), dtype=bool)
        has_profile[:n] = [r.sequence.profile is not None for r in requests]
        return list(self.explainer.explain(events, mask, profile, has_profile)[:n])

    def _top_positions(self, requests: Sequence[ScoreRequest], attention: np.ndarray) -> list:
        """Per row, the positions of the ``top_events`` most attended real events."""
        k = min(self.top_events, attention.shape[1])
        if k == 0:
            return [[] for _ in requests]
        lengths = np.array([len(r.sequence) for r in requests])
        real = np.arange(attention.shape[1])[None, :] < lengths[:, None]  # (B, T)
        ranked = np.argsort(np.where(real, -attention, np.inf), axis=1, kind="stable")[:, :k]
        return ranked.tolist()
