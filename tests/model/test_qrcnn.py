"""QRCNN: region pooling equals adaptive pooling over the real events; kernels are causal."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from model.qrcnn import QRCNN, region_bounds, region_pool


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
