"""Attention modules: reference formulas and weights over real events."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from model.attention import (
    ATTENTIONS,
    AdditiveAttention,
    CrossAttention,
    SelfAttention,
    make_attention,
)


def _inputs(lengths=(3, 5), slots=5, dim=8, query_dim=6):
    g = torch.Generator().manual_seed(0)
    states = torch.randn(len(lengths), slots, dim, generator=g)
    lengths = torch.tensor(lengths)
    mask = torch.arange(slots)[None, :] < lengths[:, None]
    query = torch.randn(len(lengths), query_dim, generator=g)
    return states, mask, lengths, query


def test_cross_attention__is_eqs_8_to_11():
    states, mask, lengths, query = _inputs()
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
    states, mask, lengths, query = _inputs()
    attention = CrossAttention(8, 6, d_k=4, heads=2)
    _, a = attention(states, mask, lengths, query)
    _, b = attention(states, mask, lengths, query + 1.0)
    assert not torch.allclose(a, b)


def test_self_attention__pooled_context_is_the_mean_of_per_position_outputs():
    states, mask, lengths, query = _inputs()
    attention = SelfAttention(8, d_k=8, heads=2)
    context, _ = attention(states, mask, lengths, query)
    for b, length in enumerate(lengths.tolist()):
        q, k, v = attention.qkv(states[b : b + 1, :length]).chunk(3, dim=-1)
        split = [x.unflatten(-1, (2, 4)).transpose(1, 2) for x in (q, k, v)]  # (1, h, L, d)
        outputs = F.scaled_dot_product_attention(*split)  # (1, h, L, d)
        expected = outputs.mean(dim=2).flatten(1)  # mean over real query positions
        torch.testing.assert_close(context[b : b + 1], expected)


def test_additive_attention__uses_a_learned_query_not_the_profile():
    states, mask, lengths, query = _inputs()
    attention = AdditiveAttention(8, d_k=4)
    _, a = attention(states, mask, lengths, query)
    _, b = attention(states, mask, lengths, query + 1.0)
    assert torch.equal(a, b)


@pytest.mark.parametrize("kind", ATTENTIONS)
def test_make_attention__weights_are_a_distribution_over_real_events(kind):
    states, mask, lengths, query = _inputs(lengths=(1, 3, 5, 0))
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
