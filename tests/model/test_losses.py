"""Losses: pinball against its definition, NaN targets ignored, BCE plus pinball."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from crmrisk.model import RiskOutput, head_loss, pinball_loss, risk_loss

TAUS = (0.1, 0.5, 0.9)


def _reference(pred: np.ndarray, y: np.ndarray, taus) -> float:
    total = []
    for row, target in zip(pred, y, strict=True):
        for q, tau in zip(row, taus, strict=True):
            total.append(tau * (target - q) if target >= q else (1 - tau) * (q - target))
    return float(np.mean(total))


def test_pinball_loss__matches_the_definition():
    rng = np.random.default_rng(0)
    pred, y = rng.normal(size=(20, 3)), rng.normal(size=20)
    got = pinball_loss(torch.tensor(pred), torch.tensor(y), TAUS).item()
    assert got == pytest.approx(_reference(pred, y, TAUS), rel=1e-9)


def test_pinball_loss__ignores_rows_without_a_target():
    pred = torch.tensor([[0.0, 1.0, 2.0], [5.0, 6.0, 7.0]])
    with_nan = pinball_loss(pred, torch.tensor([1.0, float("nan")]), TAUS)
    alone = pinball_loss(pred[:1], torch.tensor([1.0]), TAUS)
    assert torch.isfinite(with_nan) and with_nan.item() == pytest.approx(alone.item())


def test_pinball_loss__is_zero_with_a_gradient_when_no_row_has_a_target():
    pred = torch.zeros(2, 3, requires_grad=True)
    loss = pinball_loss(pred, torch.full((2,), float("nan")), TAUS)
    loss.backward()
    assert loss.item() == 0 and torch.equal(pred.grad, torch.zeros(2, 3))


def test_pinball_loss__minimiser_is_the_empirical_quantile():
    y = torch.linspace(0, 1, 1001)
    candidates = torch.linspace(0, 1, 101)
    for tau in TAUS:
        losses = [pinball_loss(c.expand(len(y), 1), y, (tau,)).item() for c in candidates]
        best = candidates[int(torch.tensor(losses).argmin())].item()
        assert best == pytest.approx(tau, abs=0.011)


def test_pinball_loss__rejects_shapes_that_do_not_match_the_levels():
    with pytest.raises(ValueError):
        pinball_loss(torch.zeros(4, 2), torch.zeros(4), TAUS)
    with pytest.raises(ValueError):
        pinball_loss(torch.zeros(4, 3), torch.zeros(5), TAUS)


def test_risk_loss__is_bce_without_target_and_adds_weighted_pinball_with_one():
    logit = torch.tensor([0.3, -1.2])
    quantiles = torch.tensor([[0.0, 1.0, 2.0], [1.0, 1.5, 3.0]])
    out = RiskOutput(logit, torch.sigmoid(logit), quantiles, torch.ones(2, 1))
    label = torch.tensor([1, 0])
    bce = F.binary_cross_entropy_with_logits(logit, label.float())
    assert risk_loss(out, label).item() == pytest.approx(bce.item())
    target = torch.tensor([1.0, 2.0])
    expected = bce + 0.5 * pinball_loss(quantiles, target, TAUS)
    got = risk_loss(out, label, target, TAUS, quantile_weight=0.5)
    assert got.item() == pytest.approx(expected.item())
    weighted = risk_loss(out, label, pos_weight=3.0)
    reference = F.binary_cross_entropy_with_logits(
        logit, label.float(), pos_weight=torch.tensor(3.0)
    )
    assert weighted.item() == pytest.approx(reference.item())


def test_head_loss__averages_each_heads_own_cross_entropy():
    heads = torch.tensor([[2.0, -1.0, 0.5], [-0.3, 0.2, 1.0]])
    label = torch.tensor([1.0, 0.0])
    out = RiskOutput(heads.mean(1), torch.sigmoid(heads.mean(1)), None, torch.ones(2, 1), heads)
    want = torch.stack(
        [F.binary_cross_entropy_with_logits(heads[:, i], label) for i in range(3)]
    ).mean()
    torch.testing.assert_close(head_loss(out, label), want)
    # Not the loss of the averaged logit: each head is trained on its own.
    assert abs(head_loss(out, label) - F.binary_cross_entropy_with_logits(out.logit, label)) > 0.01
    alone = out._replace(head_logits=None)
    torch.testing.assert_close(
        head_loss(alone, label), F.binary_cross_entropy_with_logits(out.logit, label)
    )
