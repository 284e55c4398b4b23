"""Heads: quantiles never cross, for any weights."""

from __future__ import annotations

import torch

from model.heads import RiskHeads


def test_risk_heads__quantiles_never_cross_even_with_adversarial_weights():
    heads = RiskHeads(5, 8, 0.0, (0.05, 0.1, 0.5, 0.9, 0.95))
    with torch.no_grad():
        heads.quantiles.weight.normal_(0, 50)
    logit, quantiles = heads(torch.randn(256, 5) * 10)
    assert logit.shape == (256,) and quantiles.shape == (256, 5)
    assert torch.all(quantiles[:, 1:] >= quantiles[:, :-1])


def test_risk_heads__single_level_and_none():
    assert RiskHeads(5, 8, 0.0, (0.5,))(torch.randn(3, 5))[1].shape == (3, 1)
    assert RiskHeads(5, 8, 0.0, ())(torch.randn(3, 5))[1] is None
