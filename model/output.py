"""What every risk model returns: one named tuple, the same for all variants."""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["RiskOutput"]


class RiskOutput(NamedTuple):
    """One forward pass over a batch of ``B`` customers with ``T`` event slots.

    A named tuple (not a dataclass) so that ``torch.compile``, ``torch.jit.trace`` and the flop
    counter see plain tensors.
    """

    logit: torch.Tensor  # (B,) risk log-odds
    probability: torch.Tensor  # (B,) sigmoid(logit)
    quantiles: torch.Tensor | None  # (B, Q) non-decreasing along Q; None without quantile heads
    attention: torch.Tensor  # (B, T) weights over events: 0 on padding, sum 1 over real events
