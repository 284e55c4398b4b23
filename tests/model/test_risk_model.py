"""RiskModel contracts: padding and batch invariance, attention over events, edge cases."""

from __future__ import annotations

import pytest
import torch

from model import RiskModelConfig, RiskOutput, build
from tests.model.conftest import EVENT_DIM, PROFILE_DIM, random_batch, repad

TOL = 1e-6


def _model(**overrides):
    return build("qrcnn-lstm-cross", EVENT_DIM, PROFILE_DIM, seed=0, **overrides).eval()


def _assert_same(a: RiskOutput, b: RiskOutput) -> None:
    torch.testing.assert_close(a.logit, b.logit, atol=TOL, rtol=0)
    torch.testing.assert_close(a.probability, b.probability, atol=TOL, rtol=0)
    torch.testing.assert_close(a.quantiles, b.quantiles, atol=TOL, rtol=0)


def test_forward__returns_documented_shapes():
    out = _model()(*random_batch([3, 1, 6], slots=6))
    assert isinstance(out, RiskOutput)
    assert out.logit.shape == (3,) and out.probability.shape == (3,)
    assert out.quantiles.shape == (3, 3)
    assert out.attention.shape == (3, 6)
    torch.testing.assert_close(out.probability, torch.sigmoid(out.logit))


@torch.inference_mode()
def test_forward__same_customer_padded_to_6_or_32_scores_identically():
    model = _model()
    short = random_batch([6, 1, 4, 2], slots=6)
    out6, out32 = model(*short), model(*repad(short, 32))
    _assert_same(out6, out32)
    torch.testing.assert_close(out32.attention[:, :6], out6.attention, atol=TOL, rtol=0)
    assert torch.all(out32.attention[:, 6:] == 0)


@torch.inference_mode()
def test_forward__score_alone_equals_score_in_batch():
    model = _model()
    batch = random_batch([5, 1, 32, 17, 3], slots=32, seed=3)
    together = model(*batch)
    for i in range(5):
        alone = model(*(x[i : i + 1] for x in batch))
        torch.testing.assert_close(alone.logit, together.logit[i : i + 1], atol=TOL, rtol=0)
        torch.testing.assert_close(alone.quantiles, together.quantiles[i : i + 1], atol=TOL, rtol=0)
        torch.testing.assert_close(alone.attention, together.attention[i : i + 1], atol=TOL, rtol=0)


@torch.inference_mode()
def test_forward__attention_sums_to_one_over_real_events_and_is_zero_on_padding():
    lengths = [1, 2, 6, 9]
    events, mask, profile = random_batch(lengths, slots=9)
    attention = _model()(events, mask, profile).attention
    torch.testing.assert_close(attention.sum(dim=1), torch.ones(4), atol=1e-6, rtol=0)
    assert torch.all(attention[~mask] == 0)
    assert torch.all(attention[mask] > 0)  # softmax weights over real events are positive


@torch.inference_mode()
def test_forward__quantiles_are_non_decreasing_even_for_extreme_inputs():
    events, mask, profile = random_batch([3, 5, 1], slots=5)
    out = _model()(events * 1e3, mask, profile * 1e3)
    assert torch.all(out.quantiles[:, 1:] >= out.quantiles[:, :-1])


@torch.inference_mode()
def test_forward__length_one_sequences_give_finite_scores():
    out = _model()(*random_batch([1, 1], slots=1))
    assert torch.isfinite(out.logit).all() and torch.isfinite(out.quantiles).all()
    assert torch.all(out.attention == 1)


@torch.inference_mode()
def test_forward__customer_without_events_is_scored_from_the_profile():
    events, mask, profile = random_batch([0, 3], slots=4)
    out = _model()(events, mask, profile)
    assert torch.isfinite(out.logit).all()
    assert torch.all(out.attention[0] == 0)
    other = random_batch([0], slots=4, seed=9)[0]  # different (ignored) padded values
    again = _model()(other, mask[:1], profile[:1])
    torch.testing.assert_close(again.logit, out.logit[:1], atol=TOL, rtol=0)


@torch.inference_mode()
def test_forward__nan_in_padded_slots_does_not_leak():
    events, mask, profile = random_batch([2, 4], slots=6)
    clean = _model()(events, mask, profile)
    events[~mask] = float("nan")
    dirty = _model()(events, mask, profile)
    _assert_same(clean, dirty)


def test_forward__rejects_a_mask_that_is_not_right_padded():
    events, mask, profile = random_batch([3], slots=4)
    mask[0, 0] = False
    with pytest.raises(ValueError, match="right-padded"):
        _model()(events, mask, profile)


@pytest.mark.parametrize(
    ("events_shape", "mask_shape", "profile_shape"),
    [
        ((2, 4, EVENT_DIM + 1), (2, 4), (2, PROFILE_DIM)),
        ((2, 4, EVENT_DIM), (2, 5), (2, 5)),
        ((2, 4, EVENT_DIM), (2, 4), (3, PROFILE_DIM)),
        ((2, 0, EVENT_DIM), (2, 0), (2, 5)),
    ],
)
def test_forward__rejects_wrong_shapes(events_shape, mask_shape, profile_shape):
    with pytest.raises(ValueError):
        _model()(
            torch.zeros(events_shape),
            torch.ones(mask_shape, dtype=torch.bool),
            torch.zeros(profile_shape),
        )


@torch.inference_mode()
def test_forward__works_without_profile_features():
    model = build("qrcnn-lstm-cross", EVENT_DIM, 0, seed=0).eval()
    events, mask, _ = random_batch([2, 5], slots=5)
    out = model(events, mask, torch.zeros(2, 0))
    assert torch.isfinite(out.logit).all()
    torch.testing.assert_close(out.attention.sum(1), torch.ones(2))


@torch.inference_mode()
def test_forward__without_quantile_heads_returns_none():
    model = build("qrcnn-lstm-cross", EVENT_DIM, PROFILE_DIM, quantiles=(), seed=0).eval()
    assert model(*random_batch([2], slots=3)).quantiles is None


@torch.inference_mode()
def test_forward__bfloat16_autocast_on_cpu_is_finite_and_close():
    model = _model()
    batch = random_batch([4, 1, 8], slots=8)
    reference = model(*batch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(*batch)
    assert torch.isfinite(low.logit.float()).all()
    torch.testing.assert_close(low.probability.float(), reference.probability, atol=0.05, rtol=0)
    torch.testing.assert_close(low.attention.float().sum(1), torch.ones(3), atol=0.02, rtol=0)


def test_config__round_trips_through_a_dict():
    config = _model().config
    assert RiskModelConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    "bad",
    [
        {"frontend": "rnn"},
        {"attention": "global"},
        {"quantiles": (0.9, 0.1)},
        {"quantiles": (0.0, 0.5)},
        {"hidden": 0},
        {"dropout": 1.0},
        {"channels": 30},
    ],
)
def test_config__rejects_bad_values_with_the_field_name(bad):
    field = next(iter(bad))
    with pytest.raises(ValueError, match=field if field != "channels" else "channels"):
        build("qrcnn-lstm-cross", EVENT_DIM, PROFILE_DIM, **bad)
