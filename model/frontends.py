"""Front ends for the Table-3 ablation, in place of QRCNN: plain CNN, none (RNN only), TCN.

Every front end maps events ``(B, T, E)`` (zeroed on padding by the model) to per-event
features ``(B, T, F)``, plus an optional fixed-length summary (only QRCNN has one, from its
region pooling; these return ``None``). All convolutions are causal, so right padding never
changes a real position; features at padded slots are never read for a real event.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from model.causal_conv import CausalConv

__all__ = ["CNNFrontend", "LinearFrontend", "TCNFrontend"]


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
