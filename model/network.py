"""The risk network, top to bottom: QRCNN -> LSTM -> cross-attention -> heads, ``members`` times.

One member (``RiskNetwork``) reads events ``(B, T, E)``, a right-padding mask ``(B, T)`` and the
customer's static profile ``(B, P)``: 1. ``QRCNN`` (PAPER.md, step 2), four parallel causal
kernels and quick region pooling; 2. an LSTM (``Recurrent``, Eqs. 2-7); 3. ``CrossAttention``
(Eqs. 8-11), the profile asks and the event states answer; 4. ``RiskHeads``, the risk logit and
non-crossing quantiles (Eq. 1) from ``[last real state, context, region summary, profile]``.
The ablations swap one part for one of ``model/ablations.py`` (variants: ``model/variants.py``);
a part a variant lacks is left out of the heads' input. A customer's output depends only on its
own row and real events: causal convolutions and recurrence, per-row lengths, masked softmax.

``RiskModel`` averages ``members`` such networks (each trained on other folds of the data,
``training/crossfit.py``), then applies what was calibrated on held-out predictions: a Platt
scaling of the averaged logit and a conformal margin on the outer quantiles. Both are buffers,
saved with the weights, so the stream serves exactly what was evaluated. ``model/fused.py`` is
this network's members fused for serving, with the same outputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from crmrisk.model import ablations
from crmrisk.model.config import RECURRENTS, RiskModelConfig
from crmrisk.model.heads import RiskHeads, non_crossing
from crmrisk.model.sequences import (
    causal_windows,
    check_batch,
    last_state,
    masked_softmax,
    sequence_lengths,
    split_heads,
)

__all__ = [
    "QRCNN",
    "CrossAttention",
    "ProfileEncoder",
    "Recurrent",
    "RiskHeads",
    "RiskModel",
    "RiskNetwork",
    "RiskOutput",
    "calibrate",
    "make_attention",
    "make_frontend",
    "non_crossing",
    "region_bounds",
    "region_pool",
]

POOLS = ("max", "avg", "maxavg")


class RiskOutput(NamedTuple):
    """One forward pass over a batch of ``B`` customers with ``T`` event slots, every variant.

    A named tuple (not a dataclass) so that ``torch.compile``, ``torch.jit.trace`` and the flop
    counter see plain tensors.
    """

    logit: torch.Tensor  # (B,) risk log-odds
    probability: torch.Tensor  # (B,) sigmoid(logit)
    quantiles: torch.Tensor | None  # (B, Q) non-decreasing along Q; None without quantile heads
    attention: torch.Tensor  # (B, T) weights over events: 0 on padding, sum 1 over real events
    # (B, K k) every in-network head's own logit, member-major (training averages their losses;
    # ``logit`` is their mean); None where a caller built an output without them.
    head_logits: torch.Tensor | None = None


# -- 1. QRCNN -----------------------------------------------------------------------------------
# In Eq. (1) the quantiles are linear in the CNN features; here the pooled regions, projected to
# ``summary_dim``, are one of the inputs of the linear quantile heads. Where the paper is silent:
# kernels are causal, so padding never reaches a real position; regions are defined on each
# sequence's *real* length ``L`` the way adaptive pooling does it (region ``r`` of ``R`` covers
# events ``floor(r L / R) .. ceil((r + 1) L / R) - 1``, never empty when ``L >= 1``), so the
# pooled vector does not depend on the amount of padding; pooling is max, avg or both ("maxavg").


def region_bounds(lengths: torch.Tensor, regions: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, R)`` first and one-past-last event of each region of each row's real length."""
    r = torch.arange(regions, device=lengths.device)[None, :]  # (1, R)
    length = lengths[:, None]  # (B, 1)
    start = torch.div(r * length, regions, rounding_mode="floor")
    end = torch.div((r + 1) * length + regions - 1, regions, rounding_mode="floor")
    return start, end


def region_pool(
    features: torch.Tensor, lengths: torch.Tensor, regions: int, pool: str
) -> torch.Tensor:
    """Pool ``(B, T, C)`` features over ``regions`` regions of each row -> ``(B, R, C * k)``.

    ``k`` is 2 for "maxavg" (max then average), else 1. Only real events are read; a row
    without events pools to zeros.
    """
    batch, slots, _ = features.shape
    start, end = region_bounds(lengths, regions)  # (B, R) each
    pooled = []
    if pool in ("max", "maxavg"):
        # Gather each region's events into a fixed span, repeating its last event to fill it
        # (a repeat cannot change a max). A region spans at most ceil(T / R) + 1 events.
        span = -(-slots // regions) + 1
        offset = torch.arange(span, device=features.device)  # (M,)
        index = torch.minimum(start[..., None] + offset, end[..., None] - 1).clamp(min=0)
        rows = torch.arange(batch, device=features.device)[:, None]  # (B, 1)
        gathered = features[rows, index.flatten(1)].unflatten(1, (regions, span))  # (B,R,M,C)
        present = (lengths > 0).to(features.dtype)[:, None, None]  # (B, 1, 1)
        pooled.append(gathered.amax(dim=2) * present)  # (B, R, C)
    if pool in ("avg", "maxavg"):
        t = torch.arange(slots, device=features.device)[None, None, :]  # (1, 1, T)
        member = ((t >= start[..., None]) & (t < end[..., None])).to(features.dtype)  # (B,R,T)
        count = member.sum(dim=2, keepdim=True).clamp(min=1)  # (B, R, 1)
        pooled.append(torch.bmm(member, features) / count)  # (B, R, C)
    return torch.cat(pooled, dim=-1)


class QRCNN(nn.Module):
    """Events ``(B, T, E)`` -> per-event features ``(B, T, F)`` and a region summary ``(B, S)``.

    ``F = channels``, split evenly over the kernels. Features at padded slots are left as
    computed (from zeroed inputs): nothing downstream reads them for a real event.
    """

    def __init__(
        self,
        event_dim: int,
        channels: int,
        kernel_sizes: Sequence[int],
        regions: int,
        pool: str,
        summary_dim: int,
    ):
        super().__init__()
        if channels % len(kernel_sizes):
            raise ValueError(
                f"channels={channels} must divide evenly over kernel_sizes={tuple(kernel_sizes)}"
            )
        if pool not in POOLS:
            raise ValueError(f"region_pool={pool!r}, expected one of {POOLS}")
        per_kernel = channels // len(kernel_sizes)
        # One linear map per kernel over its k most recent events (``causal_windows``).
        self.kernels = nn.ModuleList(nn.Linear(k * event_dim, per_kernel) for k in kernel_sizes)
        self.kernel_sizes, self.widest = tuple(kernel_sizes), max(kernel_sizes)
        self.regions, self.pool = regions, pool
        pooled_dim = regions * channels * (2 if pool == "maxavg" else 1)
        self.project = nn.Linear(pooled_dim, summary_dim)
        self.out_dim, self.summary_dim = channels, summary_dim

    def stacked_kernels(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The kernels as one map ``(F, widest * E)`` and its bias ``(F,)``.

        A narrower kernel's weight is zero on the older taps it does not see (left-padded), so
        one product over the widest windows computes all of them side by side.
        """
        weight = torch.cat(
            [
                F.pad(kernel.weight, ((self.widest - k) * kernel.in_features // k, 0))
                for kernel, k in zip(self.kernels, self.kernel_sizes, strict=True)
            ]
        )
        return weight, torch.cat([kernel.bias for kernel in self.kernels])

    def forward(
        self, events: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        windows = causal_windows(events, self.widest)  # (B, T, widest * E), oldest tap first
        features = F.relu(F.linear(windows, *self.stacked_kernels()))  # (B, T, F)
        pooled = region_pool(features, lengths, self.regions, self.pool)  # (B, R, F * k)
        summary = F.relu(self.project(pooled.flatten(1)))  # (B, S)
        return features, summary


def make_frontend(config: RiskModelConfig) -> nn.Module:
    """QRCNN, or the ablation front end ``config.frontend`` names."""
    c = config
    if c.frontend == "qrcnn":
        return QRCNN(
            c.event_dim, c.channels, c.kernel_sizes, c.regions, c.region_pool, c.summary_dim
        )
    return ablations.make_frontend(config)


# -- 2. the recurrent layer -----------------------------------------------------------------------


class Recurrent(nn.Module):
    """Features ``(B, T, F)`` -> states ``(B, T, out_dim)``: LSTM, GRU, or "none" (pass-through).

    Unidirectional and run over the whole right-padded window without packing: a forward
    recurrence is causal, so the state at real event ``t`` depends only on events ``0..t``, and
    the heads read the state at the last real event (``last_state``), never the final slot. As
    invariant as ``pack_padded_sequence`` and cheaper on CPU, where packing costs more than the
    few padded steps.
    """

    def __init__(self, kind: str, in_dim: int, hidden: int):
        super().__init__()
        if kind not in RECURRENTS:
            raise ValueError(f"recurrent={kind!r}, expected one of {RECURRENTS}")
        self.kind = kind
        self.rnn: nn.Module | None = None
        if kind == "lstm":
            self.rnn = nn.LSTM(in_dim, hidden, batch_first=True)
        elif kind == "gru":
            self.rnn = nn.GRU(in_dim, hidden, batch_first=True)
        self.out_dim = in_dim if self.rnn is None else hidden

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if self.rnn is None:
            return features
        states, _ = self.rnn(features)  # (B, T, hidden)
        return states


# -- 3. cross-attention ---------------------------------------------------------------------------


class ProfileEncoder(nn.Module):
    """Static profile ``(B, P)`` -> embedding ``(B, D)``; a learned constant when ``P == 0``."""

    def __init__(self, profile_dim: int, out_dim: int):
        super().__init__()
        self.linear = nn.Linear(profile_dim, out_dim) if profile_dim else None
        self.constant = None if profile_dim else nn.Parameter(torch.zeros(out_dim))

    def forward(self, profile: torch.Tensor) -> torch.Tensor:
        if self.linear is None:
            return torch.relu(self.constant).expand(profile.shape[0], -1)  # (B, D)
        return torch.relu(self.linear(profile))  # (B, D)


class CrossAttention(nn.Module):
    """Eqs. (8)-(11): ``Q = X W_Q`` from the profile, ``K = Y W_K``, ``V = Y W_V`` from the
    states, ``softmax(Q K^T / sqrt(d_k)) V``, over ``heads``; weights over real events."""

    def __init__(self, state_dim: int, query_dim: int, d_k: int, heads: int):
        super().__init__()
        if d_k % heads:
            raise ValueError(f"d_k={d_k} must be divisible by heads={heads}")
        self.w_q = nn.Linear(query_dim, d_k)
        self.w_kv = nn.Linear(state_dim, 2 * d_k)
        self.heads, self.out_dim = heads, d_k

    def forward(
        self, states: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor, query: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        q = split_heads(self.w_q(query), self.heads)  # (B, h, d)
        k, v = (split_heads(x, self.heads) for x in self.w_kv(states).chunk(2, dim=-1))
        # k, v: (B, T, h, d)
        scores = torch.einsum("bhd,bthd->bht", q, k) / math.sqrt(q.shape[-1])  # (B, h, T)
        attended = masked_softmax(scores, mask[:, None, :])  # (B, h, T)
        context = torch.einsum("bht,bthd->bhd", attended, v).flatten(1)  # (B, d_k)
        return context, attended.mean(dim=1)


def make_attention(kind: str, state_dim: int, query_dim: int, d_k: int, heads: int) -> nn.Module:
    """The attention module named ``kind`` (one of ``ATTENTIONS``): cross or an ablation."""
    if kind == "cross":
        return CrossAttention(state_dim, query_dim, d_k, heads)
    return ablations.make_attention(kind, state_dim, d_k, heads)


# -- 4. heads: ``RiskHeads`` (model/heads.py), the risk logit and non-crossing quantiles ----------


# -- one member, and the calibrated ensemble ------------------------------------------------------


class RiskNetwork(nn.Module):
    """One member: ``forward(events, mask, profile) -> RiskOutput`` (uncalibrated)."""

    def __init__(self, config: RiskModelConfig, variant: str = "custom"):
        super().__init__()
        self.config, self.variant = config, variant
        self.frontend = make_frontend(config)
        self.recurrent = Recurrent(config.recurrent, self.frontend.out_dim, config.hidden)
        self.profile = ProfileEncoder(config.profile_dim, config.profile_hidden)
        self.attention = make_attention(
            config.attention,
            self.recurrent.out_dim,
            config.profile_hidden,
            config.d_k,
            config.heads,
        )
        parts = (self.recurrent.out_dim, self.attention.out_dim, self.frontend.summary_dim)
        width = sum(parts) + config.profile_hidden
        self.heads = RiskHeads(
            width, config.head_hidden, config.dropout, config.quantiles, config.head_members
        )

    def forward(
        self, events: torch.Tensor, mask: torch.Tensor, profile: torch.Tensor
    ) -> RiskOutput:
        """Score ``B`` customers: events ``(B, T, E)``, mask ``(B, T)`` bool, profile ``(B, P)``."""
        check_batch(events, mask, profile, self.config.event_dim, self.config.profile_dim)
        mask = mask.to(torch.bool)
        lengths = sequence_lengths(mask)  # (B,)
        dtype = self.heads.logit.weight.dtype
        # torch.where, not a product: a NaN in a padded slot must not leak through 0 * NaN.
        events = torch.where(mask[..., None], events.to(dtype), 0.0)  # (B, T, E)
        features, summary = self.frontend(events, mask, lengths)  # (B, T, F), (B, S) | None
        states = self.recurrent(features)  # (B, T, H)
        query = self.profile(profile.to(dtype))  # (B, P')
        context, attention = self.attention(states, mask, lengths, query)  # (B, D) | None, (B, T)
        parts = [last_state(states, lengths), context, summary, query]
        heads = self.heads(torch.cat([p for p in parts if p is not None], dim=-1))
        logit, quantiles, head_logits = heads
        return RiskOutput(logit, torch.sigmoid(logit), quantiles, attention, head_logits)


class RiskModel(nn.Module):
    """``forward(events, mask, profile) -> RiskOutput``; see ARCHITECTURE.md, "The model"."""

    def __init__(self, config: RiskModelConfig, variant: str = "custom"):
        super().__init__()
        self.config, self.variant = config, variant
        self.members = nn.ModuleList(RiskNetwork(config, variant) for _ in range(config.members))
        self.register_buffer("calibration", torch.tensor([1.0, 0.0]))  # logit scale, bias
        self.register_buffer("interval_margin", torch.zeros(()))  # added to the outer quantiles

    def forward(
        self, events: torch.Tensor, mask: torch.Tensor, profile: torch.Tensor
    ) -> RiskOutput:
        """Score ``B`` customers: events ``(B, T, E)``, mask ``(B, T)`` bool, profile ``(B, P)``."""
        outs = [member(events, mask, profile) for member in self.members]
        heads = torch.cat([o.head_logits for o in outs], dim=1)  # (B, K k)
        if len(outs) == 1:
            logit, quantiles, attention = outs[0].logit, outs[0].quantiles, outs[0].attention
        else:
            logit = torch.stack([o.logit for o in outs]).mean(0)
            attention = torch.stack([o.attention for o in outs]).mean(0)
            quantiles = None
            if outs[0].quantiles is not None:
                quantiles = torch.stack([o.quantiles for o in outs]).mean(0)
        margin = self.interval_margin
        return calibrate(logit, quantiles, attention, self.calibration, margin, heads)

    @torch.no_grad()
    def set_calibration(self, scale: float, bias: float) -> None:
        """Platt scaling of the averaged logit, fitted on predictions for unseen rows."""
        self.calibration.copy_(torch.tensor([scale, bias]))

    @torch.no_grad()
    def set_interval_margin(self, margin: float) -> None:
        """The conformal margin (training units) subtracted from q_low and added to q_high."""
        self.interval_margin.fill_(margin)


def calibrate(
    logit: torch.Tensor,
    quantiles: torch.Tensor | None,
    attention: torch.Tensor,
    calibration: torch.Tensor,
    interval_margin: torch.Tensor,
    head_logits: torch.Tensor | None = None,
) -> RiskOutput:
    """The member-averaged outputs with the Platt scaling and the conformal margin applied.

    The heads' logits get the same affine scaling, so their mean stays the risk logit.
    """
    scale, bias = calibration.to(logit.dtype)
    logit = logit * scale + bias
    if head_logits is not None:
        head_logits = head_logits * scale + bias
    if quantiles is not None and quantiles.shape[1] > 1:
        quantiles = _widen(quantiles, interval_margin.to(quantiles.dtype))
    return RiskOutput(logit, torch.sigmoid(logit), quantiles, attention, head_logits)


def _widen(quantiles: torch.Tensor, margin: torch.Tensor) -> torch.Tensor:
    """Outer quantiles moved out by ``margin`` (in if negative), never past their neighbours."""
    low = torch.minimum(quantiles[:, :1] - margin, quantiles[:, 1:2])
    high = torch.maximum(quantiles[:, -1:] + margin, quantiles[:, -2:-1])
    if quantiles.shape[1] == 2:
        return torch.cat([low, torch.maximum(high, low)], dim=1)
    return torch.cat([low, quantiles[:, 1:-1], high], dim=1)
