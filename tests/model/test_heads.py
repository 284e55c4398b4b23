"""RiskHeads (model/heads.py): the risk logit, non-crossing quantiles, k heads in one network."""

from __future__ import annotations

import pytest
import torch

from crmrisk.model.heads import RiskHeads


def test_risk_heads__quantiles_never_cross_even_with_adversarial_weights():
    heads = RiskHeads(5, 8, 0.0, (0.05, 0.1, 0.5, 0.9, 0.95))
    with torch.no_grad():
        heads.quantiles.weight.normal_(0, 50)
    logit, quantiles, _ = heads(torch.randn(256, 5) * 10)
    assert logit.shape == (256,) and quantiles.shape == (256, 5)
    assert torch.all(quantiles[:, 1:] >= quantiles[:, :-1])


def test_risk_heads__single_level_and_none():
    assert RiskHeads(5, 8, 0.0, (0.5,))(torch.randn(3, 5))[1].shape == (3, 1)
    assert RiskHeads(5, 8, 0.0, ())(torch.randn(3, 5))[1] is None


def test_risk_heads__one_head_keeps_the_plain_head_weights():
    # Checkpoints saved before in-network heads existed must load into k = 1 unchanged.
    names = set(RiskHeads(5, 8, 0.0, (0.1, 0.9)).state_dict())
    assert names == {"hidden.0.weight", "hidden.0.bias", "logit.weight", "logit.bias",
                     "quantiles.weight", "quantiles.bias"}  # fmt: skip


def test_risk_heads__k_heads_start_apart_and_average_to_the_logit():
    torch.manual_seed(0)
    heads = RiskHeads(5, 8, 0.0, (0.05, 0.5, 0.95), k=6)
    x = torch.randn(64, 5) * 3
    logit, quantiles, head_logits = heads(x)
    assert head_logits.shape == (64, 6) and quantiles.shape == (64, 3)
    torch.testing.assert_close(logit, head_logits.mean(dim=1))
    assert torch.all(quantiles[:, 1:] >= quantiles[:, :-1])
    # Random-sign adapters: the heads disagree from the first step, or they would be one head.
    assert head_logits.std(dim=1).mean() > 1e-2
    # Head i reads only its own hidden units: changing head 0's output rows moves column 0 only.
    with torch.no_grad():
        heads.logit.weight[0].add_(1.0)
    moved = heads(x)[2] - head_logits
    assert moved[:, 0].abs().max() > 0 and moved[:, 1:].abs().max() == 0


def test_risk_heads__rejects_no_heads():
    with pytest.raises(ValueError, match="k=0"):
        RiskHeads(5, 8, 0.0, (), k=0)
