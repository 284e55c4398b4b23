"""Output heads: the risk logit and, where requested, non-crossing quantiles (Eq. 1).

Both read the same representation through one hidden layer. The quantile head is linear in
that hidden layer, as Eq. (1) has it (``y_tau = beta_0^tau + sum_j beta_j^tau h_j(x)``), but
predicts the lowest quantile and then non-negative increments (softplus) whose running sum gives
the others, so ``q_0.1 <= q_0.5 <= q_0.9`` holds for every input by construction.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["RiskHeads"]


class RiskHeads(nn.Module):
    """Representation ``(B, D)`` -> risk logit ``(B,)`` and quantiles ``(B, Q)`` or ``None``."""

    def __init__(self, in_dim: int, hidden: int, dropout: float, quantiles: Sequence[float]):
        super().__init__()
        self.hidden = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout))
        self.logit = nn.Linear(hidden, 1)
        self.quantiles = nn.Linear(hidden, len(quantiles)) if quantiles else None

    def forward(self, representation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.hidden(representation)  # (B, hidden)
        logit = self.logit(h)[:, 0]  # (B,)
        if self.quantiles is None:
            return logit, None
        raw = self.quantiles(h)  # (B, Q): lowest quantile, then Q-1 raw increments
        steps = F.softplus(raw[:, 1:]).cumsum(dim=1)  # (B, Q-1), non-decreasing
        return logit, torch.cat([raw[:, :1], raw[:, :1] + steps], dim=1)
