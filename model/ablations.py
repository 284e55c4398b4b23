"""The parts the ablations swap into the paper's network, and the Table-1 neural baselines.

Table 3 replaces QRCNN by another front end, Table 4 replaces cross-attention by another
attention; the neural baselines (``"lstm"``, ``"cnn"`` in ``model/variants.py``) combine these
parts. ``model/network.py`` assembles every family the same way and asks ``make_frontend`` /
``make_attention`` here for any part that is not the paper's.

Front ends map events ``(B, T, E)`` (zeroed on padding by the network) to per-event features
``(B, T, F)`` plus an optional fixed-length summary (only QRCNN has one; these return ``None``).
All convolutions are causal, so right padding never changes a real position; features at padded
slots are never read for a real event.

Attentions map states ``(B, T, H)``, the mask ``(B, T)``, lengths ``(B,)`` and the profile query
``(B, P)`` to a context vector ``(B, out_dim)`` (or ``None``) and weights over *events* ``(B, T)``:
zero on padding and summing to 1 over each row's real events (all zeros for a row without
events). Those weights are what an alert quotes as "the events that drove it".

- ``LastState`` ("none"): no attention; the heads read the last real state, weight 1 on it.
- ``MeanPool`` ("mean"): uniform weights, the context is the mean state (CNN baseline pooling).
- ``SelfAttention`` ("self", "multihead"): scaled dot-product self-attention over the states;
  the outputs are averaged over real positions, so an event's weight is the attention it gets,
  averaged over queries and heads.
- ``AdditiveAttention`` ("dynamic"): Bahdanau-style ``v^T tanh(W h_t + b)``, a learned query.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from crmrisk.model.config import ATTENTIONS, RiskModelConfig
from crmrisk.model.sequences import causal_windows, masked_softmax, split_heads

__all__ = [
    "AdditiveAttention",
    "CNNFrontend",
    "CausalConv",
    "LastState",
    "LinearFrontend",
    "MeanPool",
    "SelfAttention",
    "TCNFrontend",
    "make_attention",
    "make_frontend",
]


# -- front ends (Table 3) ---------------------------------------------------------------------


class CausalConv(nn.Module):
    """Causal convolution ``(B, T, C_in) -> (B, T, C_out)``, ``kernel_size`` and ``dilation``.

    Position ``t`` sees events ``t - (k-1) d .. t`` only (left zero padding), as one matrix
    product over ``causal_windows``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1):
        super().__init__()
        # Weight columns are grouped by tap, oldest first: (C_out, kernel_size * C_in).
        self.linear = nn.Linear(kernel_size * in_channels, out_channels)
        self.kernel_size, self.dilation = kernel_size, dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(causal_windows(x, self.kernel_size, self.dilation))  # (B, T, C_out)


class CNNFrontend(nn.Module):
    """One causal convolution kernel of width ``kernel_size`` and a ReLU: the plain CNN."""

    summary_dim = 0

    def __init__(self, event_dim: int, channels: int, kernel_size: int):
        super().__init__()
        self.conv = CausalConv(event_dim, channels, kernel_size)
        self.out_dim = channels

    def forward(
        self, events: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, None]:
        return F.relu(self.conv(events)), None  # (B, T, F)


class LinearFrontend(nn.Module):
    """No convolution: a per-event linear map into the recurrent layer (the "RNN" ablation)."""

    summary_dim = 0

    def __init__(self, event_dim: int, channels: int):
        super().__init__()
        self.linear = nn.Linear(event_dim, channels)
        self.out_dim = channels

    def forward(
        self, events: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, None]:
        return self.linear(events), None  # (B, T, F)


class _TCNBlock(nn.Module):
    """Two dilated causal convolutions with a residual connection (Bai, Kolter & Koltun 2018)."""

    def __init__(self, in_channels: int, channels: int, kernel_size: int, dilation: int):
        super().__init__()
        self.conv1 = CausalConv(in_channels, channels, kernel_size, dilation)
        self.conv2 = CausalConv(channels, channels, kernel_size, dilation)
        self.skip = nn.Linear(in_channels, channels) if in_channels != channels else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.relu(self.conv1(x)))  # (B, T, F)
        return F.relu(y + (x if self.skip is None else self.skip(x)))


class TCNFrontend(nn.Module):
    """A temporal convolutional network: residual blocks with dilations e.g. 1, 2, 4."""

    summary_dim = 0

    def __init__(self, event_dim: int, channels: int, kernel_size: int, dilations: Sequence[int]):
        super().__init__()
        widths = [event_dim] + [channels] * len(dilations)
        self.blocks = nn.Sequential(
            *(_TCNBlock(widths[i], channels, kernel_size, d) for i, d in enumerate(dilations))
        )
        self.out_dim = channels

    def forward(
        self, events: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, None]:
        return self.blocks(events), None  # (B, T, F)


def make_frontend(config: RiskModelConfig) -> nn.Module:
    """The ablation front end ``config.frontend`` names ("cnn", "linear" or "tcn")."""
    c = config
    if c.frontend == "cnn":
        return CNNFrontend(c.event_dim, c.channels, c.cnn_kernel)
    if c.frontend == "linear":
        return LinearFrontend(c.event_dim, c.channels)
    if c.frontend == "tcn":
        return TCNFrontend(c.event_dim, c.channels, c.tcn_kernel, c.tcn_dilations)
    raise ValueError(f"frontend={c.frontend!r} is not an ablation front end")


# -- attentions (Table 4) ---------------------------------------------------------------------


class LastState(nn.Module):
    """No attention: all weight on the last real event (its state already feeds the heads)."""

    out_dim = 0

    def forward(
        self, states: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor, query: torch.Tensor
    ) -> tuple[None, torch.Tensor]:
        positions = torch.arange(mask.shape[1], device=mask.device)  # (T,)
        weights = (positions[None, :] == (lengths - 1)[:, None]).to(states.dtype)  # (B, T)
        return None, weights


class MeanPool(nn.Module):
    """Uniform weights over real events; the context is the mean state."""

    def __init__(self, state_dim: int):
        super().__init__()
        self.out_dim = state_dim

    def forward(
        self, states: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor, query: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        weights = mask.to(states.dtype) / lengths.clamp(min=1).to(states.dtype)[:, None]  # (B, T)
        return torch.bmm(weights[:, None, :], states)[:, 0], weights  # (B, H), (B, T)


class SelfAttention(nn.Module):
    """Multi-head scaled dot-product self-attention, pooled over real query positions."""

    def __init__(self, state_dim: int, d_k: int, heads: int):
        super().__init__()
        if d_k % heads:
            raise ValueError(f"d_k={d_k} must be divisible by heads={heads}")
        self.qkv = nn.Linear(state_dim, 3 * d_k)
        self.heads, self.out_dim = heads, d_k

    def forward(
        self, states: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor, query: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        q, k, v = (
            split_heads(x, self.heads).transpose(1, 2)  # (B, h, T, d)
            for x in self.qkv(states).chunk(3, dim=-1)
        )
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # (B, h, T_query, T_key)
        attended = masked_softmax(scores, mask[:, None, None, :])
        # Average each key's weight over the real queries: mean_i(a_ij V_j) = (mean_i a_ij) V_j.
        real = mask.to(scores.dtype) / lengths.clamp(min=1).to(scores.dtype)[:, None]  # (B, T)
        per_head = real[:, None, None, :] @ attended  # (B, h, 1, T)
        context = (per_head @ v).flatten(1)  # (B, h, 1, d) -> (B, d_k)
        return context, per_head[:, :, 0].mean(dim=1)


class AdditiveAttention(nn.Module):
    """ "Dynamic" attention: score ``v^T tanh(W h_t + b)`` with a learned query ``v``."""

    def __init__(self, state_dim: int, d_k: int):
        super().__init__()
        self.key = nn.Linear(state_dim, d_k)
        self.value = nn.Linear(state_dim, d_k)
        self.query = nn.Linear(d_k, 1, bias=False)
        self.out_dim = d_k

    def forward(
        self, states: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor, query: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        scores = self.query(torch.tanh(self.key(states)))[..., 0]  # (B, T)
        weights = masked_softmax(scores, mask)
        context = torch.bmm(weights[:, None, :], self.value(states))[:, 0]  # (B, d_k)
        return context, weights


def make_attention(kind: str, state_dim: int, d_k: int, heads: int) -> nn.Module:
    """The ablation attention named ``kind`` (any of ``ATTENTIONS`` but "cross")."""
    if kind == "none":
        return LastState()
    if kind == "mean":
        return MeanPool(state_dim)
    if kind == "self":
        return SelfAttention(state_dim, d_k, heads=1)
    if kind == "multihead":
        return SelfAttention(state_dim, d_k, heads)
    if kind == "dynamic":
        return AdditiveAttention(state_dim, d_k)
    raise ValueError(f"attention={kind!r}, expected one of {ATTENTIONS}")
