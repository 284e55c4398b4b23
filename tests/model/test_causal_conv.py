"""CausalConv equals a left-padded ``F.conv1d``, dilation included."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from model.causal_conv import CausalConv, causal_windows


@pytest.mark.parametrize(("kernel_size", "dilation"), [(1, 1), (2, 1), (3, 2), (5, 4)])
def test_causal_conv__equals_left_padded_conv1d(kernel_size, dilation):
    conv = CausalConv(4, 6, kernel_size, dilation)
    x = torch.randn(3, 10, 4)
    weight = conv.linear.weight.unflatten(1, (kernel_size, 4)).transpose(1, 2)  # (out, in, k)
    padded = F.pad(x.transpose(1, 2), ((kernel_size - 1) * dilation, 0))
    expected = F.conv1d(padded, weight, conv.linear.bias, dilation=dilation).transpose(1, 2)
    torch.testing.assert_close(conv(x), expected)


def test_causal_windows__oldest_tap_first_zeros_before_the_start():
    x = torch.arange(1.0, 4.0).reshape(1, 3, 1)  # events 1, 2, 3
    windows = causal_windows(x, 3)
    assert windows[0].tolist() == [[0.0, 0.0, 1.0], [0.0, 1.0, 2.0], [1.0, 2.0, 3.0]]
