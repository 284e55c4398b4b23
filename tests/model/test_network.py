"""The network top to bottom: QRCNN, cross-attention, heads, and RiskModel's contracts
(padding and batch invariance, attention over events, edge cases)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from crmrisk.model import RiskOutput, build
from crmrisk.model.config import ATTENTIONS
from crmrisk.model.network import (
    QRCNN,
    CrossAttention,
    make_attention,
    region_bounds,
    region_pool,
)
from tests.model.conftest import EVENT_DIM, PROFILE_DIM, attention_inputs, random_batch, repad

TOL = 1e-6


def _model(**overrides):
    return build("qrcnn-lstm-cross", EVENT_DIM, PROFILE_DIM, seed=0, **overrides).eval()


def _assert_same(a: RiskOutput, b: RiskOutput) -> None:
    torch.testing.assert_close(a.logit, b.logit, atol=TOL, rtol=0)
    torch.testing.assert_close(a.probability, b.probability, atol=TOL, rtol=0)
    torch.testing.assert_close(a.quantiles, b.quantiles, atol=TOL, rtol=0)


@pytest.mark.parametrize("length", [1, 2, 3, 5, 6, 7, 32])
@pytest.mark.parametrize("regions", [1, 4])
def test_region_pool__equals_adaptive_pooling_of_the_real_part(length, regions):
    slots = 32
    features = torch.randn(1, slots, 6)  # any sign: the max must not rely on ReLU
    lengths = torch.tensor([length])
    pooled = region_pool(features, lengths, regions, "maxavg")  # (1, R, 12)
    real = features[:, :length].transpose(1, 2)  # (1, C, L)
    expected_max = F.adaptive_max_pool1d(real, regions).transpose(1, 2)
    expected_avg = F.adaptive_avg_pool1d(real, regions).transpose(1, 2)
    torch.testing.assert_close(pooled, torch.cat([expected_max, expected_avg], -1))


def test_region_pool__modes_and_empty_rows():
    features = torch.rand(2, 5, 3)
    lengths = torch.tensor([0, 5])
    assert region_pool(features, lengths, 4, "max").shape == (2, 4, 3)
    assert region_pool(features, lengths, 4, "avg").shape == (2, 4, 3)
    assert torch.all(region_pool(features, lengths, 4, "maxavg")[0] == 0)


def test_region_bounds__cover_every_real_event_and_nothing_after():
    start, end = region_bounds(torch.tensor([6, 1]), 4)
    assert start.tolist() == [[0, 1, 3, 4], [0, 0, 0, 0]]
    assert end.tolist() == [[2, 3, 5, 6], [1, 1, 1, 1]]


def test_qrcnn__kernels_match_causal_convolutions():
    torch.manual_seed(0)
    qrcnn = QRCNN(3, 8, (1, 2, 3, 5), regions=2, pool="max", summary_dim=4)
    events = torch.randn(2, 9, 3)
    features, summary = qrcnn(events, torch.ones(2, 9, dtype=torch.bool), torch.tensor([9, 9]))
    expected = []
    for kernel, k in zip(qrcnn.kernels, qrcnn.kernel_sizes, strict=True):
        # A linear kernel's columns are grouped by tap (oldest first): (out, k, in) -> conv weight.
        weight = kernel.weight.unflatten(1, (k, 3)).transpose(1, 2)  # (out, in, k)
        padded = F.pad(events.transpose(1, 2), (k - 1, 0))
        expected.append(F.relu(F.conv1d(padded, weight, kernel.bias)))
    torch.testing.assert_close(features, torch.cat(expected, 1).transpose(1, 2))
    assert summary.shape == (2, 4)


def test_qrcnn__a_later_event_never_changes_an_earlier_feature():
    qrcnn = QRCNN(3, 8, (1, 2, 3, 5), regions=2, pool="maxavg", summary_dim=4)
    events = torch.randn(1, 6, 3)
    changed = events.clone()
    changed[:, 4] += 10.0
    mask, lengths = torch.ones(1, 6, dtype=torch.bool), torch.tensor([6])
    before, _ = qrcnn(events, mask, lengths)
    after, _ = qrcnn(changed, mask, lengths)
    assert torch.equal(before[:, :4], after[:, :4])
    assert not torch.equal(before[:, 4:], after[:, 4:])


def test_qrcnn__rejects_channels_that_do_not_split_over_the_kernels():
    with pytest.raises(ValueError, match="channels"):
        QRCNN(3, 10, (1, 2, 3, 5), regions=2, pool="max", summary_dim=4)
    with pytest.raises(ValueError, match="region_pool"):
        QRCNN(3, 8, (1, 2, 3, 5), regions=2, pool="median", summary_dim=4)


def test_cross_attention__is_eqs_8_to_11():
    states, mask, lengths, query = attention_inputs()
    attention = CrossAttention(8, 6, d_k=4, heads=1)
    context, weights = attention(states, mask, lengths, query)
    q = attention.w_q(query)  # Q = X W_Q, from the profile
    k, v = attention.w_kv(states).chunk(2, dim=-1)  # K = Y W_K, V = Y W_V, from the states
    expected = F.scaled_dot_product_attention(
        q[:, None, None, :], k[:, None], v[:, None], attn_mask=mask[:, None, None, :]
    )[:, 0, 0]
    torch.testing.assert_close(context, expected)
    scores = torch.einsum("bd,btd->bt", q, k) / math.sqrt(4)
    expected_weights = torch.softmax(scores.masked_fill(~mask, -math.inf), dim=-1)
    torch.testing.assert_close(weights, expected_weights)


def test_cross_attention__the_profile_changes_the_weights():
    states, mask, lengths, query = attention_inputs()
    attention = CrossAttention(8, 6, d_k=4, heads=2)
    _, a = attention(states, mask, lengths, query)
    _, b = attention(states, mask, lengths, query + 1.0)
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("kind", ATTENTIONS)
def test_make_attention__weights_are_a_distribution_over_real_events(kind):
    states, mask, lengths, query = attention_inputs(lengths=(1, 3, 5, 0))
    context, weights = make_attention(kind, 8, 6, d_k=4, heads=2)(states, mask, lengths, query)
    torch.testing.assert_close(weights[:3].sum(1), torch.ones(3))
    assert torch.all(weights[~mask] == 0) and torch.all(weights[3] == 0)
    if context is not None:
        assert context.shape[0] == 4 and torch.isfinite(context).all()


def test_make_attention__unknown_kind_and_bad_heads():
    with pytest.raises(ValueError, match="attention"):
        make_attention("global", 8, 6, d_k=4, heads=1)
    with pytest.raises(ValueError, match="heads"):
        make_attention("cross", 8, 6, d_k=6, heads=4)


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
