"""Attention over the recurrent states, for the Table-4 ablation; cross-attention is the paper's.

Each module maps states ``(B, T, H)``, the mask ``(B, T)``, lengths ``(B,)`` and the profile
query ``(B, P)`` to a context vector ``(B, out_dim)`` (or ``None``) and weights over *events*
``(B, T)``: zero on padding and summing to 1 over each row's real events (all zeros for a row
without events). Those weights are what an alert quotes as "the events that drove it".

- ``LastState`` ("none"): no attention; the heads read the last real state, weight 1 on it.
- ``MeanPool`` ("mean"): uniform weights, the context is the mean state (CNN baseline pooling).
- ``SelfAttention`` ("self", "multihead"): scaled dot-product self-attention over the states;
  the outputs are averaged over real positions, so an event's weight is the attention it gets,
  averaged over queries and heads.
- ``AdditiveAttention`` ("dynamic"): Bahdanau-style ``v^T tanh(W h_t + b)``, a learned query.
- ``CrossAttention`` ("cross"), Eqs. (8)-(11): ``Q = X W_Q`` from the customer's static profile,
  ``K = Y W_K`` and ``V = Y W_V`` from the states, ``softmax(Q K^T / sqrt(d_k)) V``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from model.masking import masked_softmax

__all__ = [
    "ATTENTIONS",
    "AdditiveAttention",
    "CrossAttention",
    "LastState",
    "MeanPool",
    "SelfAttention",
    "make_attention",
]


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


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    return x.unflatten(-1, (heads, -1))  # (..., D) -> (..., heads, D / heads)


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
            _split_heads(x, self.heads).transpose(1, 2)  # (B, h, T, d)
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


class CrossAttention(nn.Module):
    """Eqs. (8)-(11): the profile asks, the event states answer; scaled dot product, ``heads``."""

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
        q = _split_heads(self.w_q(query), self.heads)  # (B, h, d)
        k, v = (_split_heads(x, self.heads) for x in self.w_kv(states).chunk(2, dim=-1))
        # k, v: (B, T, h, d)
        scores = torch.einsum("bhd,bthd->bht", q, k) / math.sqrt(q.shape[-1])  # (B, h, T)
        attended = masked_softmax(scores, mask[:, None, :])  # (B, h, T)
        context = torch.einsum("bht,bthd->bhd", attended, v).flatten(1)  # (B, d_k)
        return context, attended.mean(dim=1)


ATTENTIONS = ("none", "mean", "self", "multihead", "dynamic", "cross")


def make_attention(kind: str, state_dim: int, query_dim: int, d_k: int, heads: int) -> nn.Module:
    """The attention module named ``kind`` (one of ``ATTENTIONS``)."""
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
    if kind == "cross":
        return CrossAttention(state_dim, query_dim, d_k, heads)
    raise ValueError(f"attention={kind!r}, expected one of {ATTENTIONS}")
