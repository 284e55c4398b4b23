"""Step 4 of the network (``model/network.py``): representation -> risk logit and quantiles.

``RiskHeads`` reads the concatenated ``[last real state, context, region summary, profile]``;
with ``k > 1`` it is an ensemble of heads inside the network (see its docstring).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["RiskHeads", "non_crossing"]


def non_crossing(raw: torch.Tensor) -> torch.Tensor:
    """``(..., Q)`` lowest quantile then raw increments -> non-decreasing quantiles ``(..., Q)``."""
    steps = F.softplus(raw[..., 1:]).cumsum(dim=-1)  # (..., Q-1), non-decreasing
    return torch.cat([raw[..., :1], raw[..., :1] + steps], dim=-1)


class RiskHeads(nn.Module):
    """Representation ``(B, D)`` -> risk logit ``(B,)``, quantiles ``(B, Q)`` or ``None``, and
    the ``k`` heads' own logits ``(B, k)``.

    Both outputs read one hidden layer. The quantile head is linear in it, as Eq. (1) has it, but
    predicts the lowest quantile and then non-negative increments (``non_crossing``), so
    ``q_0.1 <= q_0.5 <= q_0.9`` holds for every input by construction.

    ``k > 1`` heads are an ensemble inside the network, TabM-mini style (Gorishniy et al. 2025):
    head ``i`` reads ``r_i * x`` (its own multiplicative adapter ``r_i``, initialised to random
    signs so the heads start apart) through the shared hidden layer, and has its own output
    rows; the hidden layer's weights and bias are shared. Training averages the heads' losses
    (each head learns on its own), serving averages their logits and quantiles; the extra cost
    is one wider hidden layer. With ``k = 1`` there is no adapter and the weights are those of a
    plain head (old checkpoints load unchanged).
    """

    def __init__(
        self,
        in_dim: int,
        hidden: int,
        dropout: float,
        quantiles: Sequence[float],
        k: int = 1,
    ):
        super().__init__()
        if k < 1:
            raise ValueError(f"k={k} heads must be >= 1")
        self.k, self.width, self.levels = k, hidden, len(quantiles)
        self.hidden = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout))
        # Rows are head-major: head i's logit row, then head i's Q quantile rows.
        self.logit = nn.Linear(hidden, k)
        self.quantiles = nn.Linear(hidden, k * len(quantiles)) if quantiles else None
        self.adapter = None
        if k > 1:
            self.adapter = nn.Parameter(torch.randint(0, 2, (k, in_dim)).float() * 2 - 1)

    def stacked(self) -> dict[str, torch.Tensor | None]:
        """The ``k`` heads as plain linear maps over the shared representation ``(B, D)``:
        ``hidden`` ``(k H, D)`` and its bias, ``logit`` ``(k, k H)`` and ``quantile``
        ``(k Q, k H)`` block-diagonal (head ``i`` reads only its own hidden units), biases."""
        layer = self.hidden[0]
        if self.adapter is None:
            weight, bias = layer.weight, layer.bias
        else:
            weight = (layer.weight[None] * self.adapter[:, None, :]).flatten(0, 1)  # (k H, D)
            bias = layer.bias.repeat(self.k)
        return {
            "hidden_weight": weight,
            "hidden_bias": bias,
            "logit_weight": _block_rows(self.logit.weight, self.k),
            "logit_bias": self.logit.bias,
            "quantile_weight": None
            if self.quantiles is None
            else _block_rows(self.quantiles.weight, self.k),
            "quantile_bias": None if self.quantiles is None else self.quantiles.bias,
        }

    def forward(
        self, representation: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        w = self.stacked()
        h = self.hidden[1](F.linear(representation, w["hidden_weight"], w["hidden_bias"]))
        h = self.hidden[2](h)  # (B, k H): dropout per head unit
        logits = F.linear(h, w["logit_weight"], w["logit_bias"])  # (B, k)
        if self.quantiles is None:
            return logits.mean(dim=1), None, logits
        raw = F.linear(h, w["quantile_weight"], w["quantile_bias"])  # (B, k Q)
        quantiles = non_crossing(raw.unflatten(-1, (self.k, self.levels))).mean(dim=1)
        return logits.mean(dim=1), quantiles, logits


def _block_rows(weight: torch.Tensor, k: int) -> torch.Tensor:
    """``(k R, H)`` rows, ``R`` per head, -> ``(k R, k H)``: head ``i``'s rows read only its
    own ``H`` hidden units."""
    return torch.block_diag(*weight.unflatten(0, (k, -1)))
