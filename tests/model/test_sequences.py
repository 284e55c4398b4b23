"""Sequence helpers: right padding enforced, softmax safe in low precision, causal windows."""

from __future__ import annotations

import pytest
import torch

from crmrisk.model.sequences import causal_windows, last_state, masked_softmax, sequence_lengths


def test_sequence_lengths__counts_real_events_and_rejects_gaps():
    mask = torch.tensor([[True, True, False], [False, False, False], [True, True, True]])
    assert sequence_lengths(mask).tolist() == [2, 0, 3]
    with pytest.raises(ValueError, match="right-padded"):
        sequence_lengths(torch.tensor([[True, False, True]]))
    with pytest.raises(ValueError, match="B, T"):
        sequence_lengths(torch.ones(3, dtype=torch.bool))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_masked_softmax__zero_on_masked_and_no_nan_in_low_precision(dtype):
    scores = torch.tensor([[1.0, 2.0, 50.0], [3.0, -3.0, 0.0], [1.0, 1.0, 1.0]], dtype=dtype)
    mask = torch.tensor([[True, True, False], [True, False, False], [False, False, False]])
    weights = masked_softmax(scores, mask)
    assert not torch.isnan(weights).any()
    assert torch.all(weights[~mask] == 0)
    torch.testing.assert_close(
        weights.float().sum(1), torch.tensor([1.0, 1.0, 0.0]), atol=1e-2, rtol=0
    )


def test_last_state__picks_the_last_real_event_and_zeros_empty_rows():
    states = torch.arange(12.0).reshape(2, 3, 2) + 1
    picked = last_state(states, torch.tensor([2, 0]))
    assert picked.tolist() == [[3.0, 4.0], [0.0, 0.0]]


def test_causal_windows__oldest_tap_first_zeros_before_the_start():
    x = torch.arange(1.0, 4.0).reshape(1, 3, 1)  # events 1, 2, 3
    windows = causal_windows(x, 3)
    assert windows[0].tolist() == [[0.0, 0.0, 1.0], [0.0, 1.0, 2.0], [1.0, 2.0, 3.0]]
