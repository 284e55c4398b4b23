"""Causal 1-D convolution over event sequences, as one matrix product in ``(B, T, C)`` layout.

Position ``t`` sees events ``t - (k-1) d .. t`` only (left zero padding). Causal rather than
centred so that right padding can never change a real position's value, and a streaming score at
event ``t`` uses only events up to ``t``. Stacking the ``k`` shifted copies and multiplying once
keeps the sequence-major layout the LSTM wants (no transposes) and costs one small product per
layer, which on CPU beats ``nn.Conv1d`` for these short sequences and narrow channels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CausalConv", "causal_windows"]


def causal_windows(x: torch.Tensor, width: int, dilation: int = 1) -> torch.Tensor:
    """``(B, T, C)`` -> ``(B, T, width * C)``: for each ``t`` the inputs at ``t - (width-1-j) d``
    for ``j = 0..width-1`` (oldest tap first), zeros before the sequence start."""
    if width == 1:
        return x
    steps = x.shape[1]
    padded = F.pad(x, (0, 0, (width - 1) * dilation, 0))  # (B, T + (width-1) d, C)
    return torch.cat([padded[:, j * dilation : j * dilation + steps] for j in range(width)], -1)


class CausalConv(nn.Module):
    """Causal convolution ``(B, T, C_in) -> (B, T, C_out)``, ``kernel_size`` and ``dilation``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1):
        super().__init__()
        # Weight columns are grouped by tap, oldest first: (C_out, kernel_size * C_in).
        self.linear = nn.Linear(kernel_size * in_channels, out_channels)
        self.kernel_size, self.dilation = kernel_size, dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(causal_windows(x, self.kernel_size, self.dilation))  # (B, T, C_out)
