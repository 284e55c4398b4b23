"""Ablation parts: causal convolutions and the attentions Table 4 swaps in."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from crmrisk.model.ablations import AdditiveAttention, CausalConv, SelfAttention
from tests.model.conftest import attention_inputs


@pytest.mark.parametrize(("kernel_size", "dilation"), [(1, 1), (2, 1), (3, 2), (5, 4)])
def test_causal_conv__equals_left_padded_conv1d(kernel_size, dilation):
    conv = CausalConv(4, 6, kernel_size, dilation)
    x = torch.randn(3, 10, 4)
    weight = conv.linear.weight.unflatten(1, (kernel_size, 4)).transpose(1, 2)  # (out, in, k)
    padded = F.pad(x.transpose(1, 2), ((kernel_size - 1) * dilation, 0))
    expected = F.conv1d(padded, weight, conv.linear.bias, dilation=dilation).transpose(1, 2)
    torch.testing.assert_close(conv(x), expected)


def test_self_attention__pooled_context_is_the_mean_of_per_position_outputs():
    states, mask, lengths, query = attention_inputs()
    attention = SelfAttention(8, d_k=8, heads=2)
    context, _ = attention(states, mask, lengths, query)
    for b, length in enumerate(lengths.tolist()):
        q, k, v = attention.qkv(states[b : b + 1, :length]).chunk(3, dim=-1)
        split = [x.unflatten(-1, (2, 4)).transpose(1, 2) for x in (q, k, v)]  # (1, h, L, d)
        outputs = F.scaled_dot_product_attention(*split)  # (1, h, L, d)
        expected = outputs.mean(dim=2).flatten(1)  # mean over real query positions
        torch.testing.assert_close(context[b : b + 1], expected)


def test_additive_attention__uses_a_learned_query_not_the_profile():
    states, mask, lengths, query = attention_inputs()
    attention = AdditiveAttention(8, d_k=4)
    _, a = attention(states, mask, lengths, query)
    _, b = attention(states, mask, lengths, query + 1.0)
    assert torch.equal(a, b)
