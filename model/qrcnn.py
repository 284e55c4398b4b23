"""The QRCNN front end: four parallel causal kernels and quick region pooling.

Per the paper (PAPER.md, step 2): one-dimensional convolutions with four local kernels of
different widths slide over the event sequence; a quick region pooling layer turns the feature
maps into a fixed-length representation of local features at several positions. In Eq. (1) the
quantiles are linear in these CNN features, ``y_tau = beta_0 + sum_j beta_j h_j(x)``; here the
pooled regions, projected to ``summary_dim``, are one of the inputs of the linear quantile heads
(``model/heads.py``).

Our choices where the paper is silent:
- kernels are causal (``model/causal_conv.py``), so padding never reaches a real position;
- regions are defined on each sequence's *real* length ``L`` the way adaptive pooling does it:
  region ``r`` of ``R`` covers events ``floor(r L / R) .. ceil((r + 1) L / R) - 1``. A region is
  never empty when ``L >= 1`` (short sequences repeat events across regions), and the pooled
  vector does not depend on the amount of padding;
- pooling is max, average or both ("maxavg", the default), per region and channel.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from model.causal_conv import causal_windows

__all__ = ["QRCNN", "region_bounds", "region_pool"]

POOLS = ("max", "avg", "maxavg")


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
        # One linear map per kernel over its k most recent events (model/causal_conv.py).
        self.kernels = nn.ModuleList(nn.Linear(k * event_dim, per_kernel) for k in kernel_sizes)
        self.kernel_sizes, self.widest = tuple(kernel_sizes), max(kernel_sizes)
        self.regions, self.pool = regions, pool
        pooled_dim = regions * channels * (2 if pool == "maxavg" else 1)
        self.project = nn.Linear(pooled_dim, summary_dim)
        self.out_dim, self.summary_dim = channels, summary_dim

    def forward(
        self, events: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        windows = causal_windows(events, self.widest)  # (B, T, widest * E), oldest tap first
        # The four kernels as one product: a narrower kernel's weight is zero on the older taps
        # it does not see (left-padded), so one pass computes all of them side by side.
        weight = torch.cat(
            [
                F.pad(kernel.weight, ((self.widest - k) * kernel.in_features // k, 0))
                for kernel, k in zip(self.kernels, self.kernel_sizes, strict=True)
            ]
        )  # (F, widest * E)
        bias = torch.cat([kernel.bias for kernel in self.kernels])  # (F,)
        features = F.relu(F.linear(windows, weight, bias))  # (B, T, F)
        pooled = region_pool(features, lengths, self.regions, self.pool)  # (B, R, F * k)
        summary = F.relu(self.project(pooled.flatten(1)))  # (B, S)
        return features, summary
