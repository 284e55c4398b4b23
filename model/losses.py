"""Training losses: binary cross-entropy for the risk head, pinball loss for the quantiles."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from crmrisk.model.network import RiskOutput

__all__ = ["head_loss", "pinball_loss", "risk_loss"]


def pinball_loss(
    predicted: torch.Tensor, target: torch.Tensor, quantiles: Sequence[float]
) -> torch.Tensor:
    """Mean pinball (quantile) loss over rows and levels; rows with a NaN target are ignored.

    ``predicted`` is ``(B, Q)``, ``target`` ``(B,)``; per level ``tau`` the loss is
    ``max(tau * (y - q), (tau - 1) * (y - q))``. Returns 0 (with a gradient) when no row has a
    target.

    >>> q = torch.tensor([[0.0, 1.0, 2.0]])
    >>> round(pinball_loss(q, torch.tensor([1.0]), (0.1, 0.5, 0.9)).item(), 4)
    0.0667
    """
    if predicted.dim() != 2 or predicted.shape[1] != len(quantiles):
        raise ValueError(f"predicted must be (B, {len(quantiles)}), got {tuple(predicted.shape)}")
    if target.shape != predicted.shape[:1]:
        raise ValueError(f"target must be ({predicted.shape[0]},), got {tuple(target.shape)}")
    known = ~torch.isnan(target)  # (B,)
    taus = torch.as_tensor(quantiles, dtype=predicted.dtype, device=predicted.device)  # (Q,)
    error = torch.where(known, target, 0.0).to(predicted.dtype)[:, None] - predicted  # (B, Q)
    loss = torch.maximum(taus * error, (taus - 1) * error)  # (B, Q)
    weight = known.to(loss.dtype)[:, None]
    return (loss * weight).sum() / (weight.sum() * len(quantiles)).clamp(min=1)


def head_loss(
    output: RiskOutput, label: torch.Tensor, pos_weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Binary cross-entropy of each in-network head's own logit, averaged over the heads, so
    each head of an ensemble (``RiskHeads`` with ``k > 1``) learns on its own; with one head
    (or only the averaged logit) it is plain BCE on the risk logit."""
    logits = output.head_logits if output.head_logits is not None else output.logit[:, None]
    label = label.to(logits.dtype)[:, None].expand_as(logits)
    return F.binary_cross_entropy_with_logits(logits, label, pos_weight=pos_weight)


def risk_loss(
    output: RiskOutput,
    label: torch.Tensor,
    target: torch.Tensor | None = None,
    quantiles: Sequence[float] = (),
    quantile_weight: float = 1.0,
    pos_weight: float | None = None,
) -> torch.Tensor:
    """BCE on the risk logit, plus ``quantile_weight`` times the pinball loss when a target
    is given and the model has quantile heads.

    ``pos_weight`` up-weights positive rows (e.g. negatives / positives for rare labels).
    """
    weight = None
    if pos_weight is not None:
        weight = torch.as_tensor(pos_weight, dtype=output.logit.dtype, device=output.logit.device)
    loss = head_loss(output, label, weight)
    if target is not None and output.quantiles is not None:
        loss = loss + quantile_weight * pinball_loss(output.quantiles, target, quantiles)
    return loss
