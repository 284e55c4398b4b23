"""FLOP counting (benchmarks only) includes the recurrent layer that torch's counter leaves out."""

from __future__ import annotations

import torch

from benchmarks.flops import count_flops
from crmrisk.model import build


class _Wrap(torch.nn.Module):
    def __init__(self, rnn: torch.nn.Module):
        super().__init__()
        self.rnn = rnn

    def forward(self, events, mask, profile):
        return self.rnn(events)


def test_count_flops__lstm_and_gru_match_the_matmul_count():
    x = torch.randn(3, 10, 16)
    lstm = count_flops(_Wrap(torch.nn.LSTM(16, 8, batch_first=True)), x, None, None)
    gru = count_flops(_Wrap(torch.nn.GRU(16, 8, batch_first=True)), x, None, None)
    assert lstm == 2 * 10 * 4 * 8 * (16 + 8)  # per customer: steps * gates*H * (in + H) * 2
    assert gru == 2 * 10 * 3 * 8 * (16 + 8)


def test_count_flops__matches_a_linear_layer_per_customer():
    class ProfileLinear(torch.nn.Module):  # exactly 2 * P * H FLOPs per customer (a matmul)
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(4, 10, bias=False)

        def forward(self, events, mask, profile):
            return self.linear(profile).sum(-1)

    events, profile = torch.randn(16, 1, 1), torch.randn(16, 4)
    assert count_flops(ProfileLinear(), events, None, profile) == 2 * 4 * 10


def test_count_flops__counts_the_cpu_lstm_gates():
    x = torch.randn(16, 5, 3)
    # 5 steps x 4 gates x 2 x hidden 8 x (input 3 + hidden 8)
    assert count_flops(_Wrap(torch.nn.LSTM(3, 8, batch_first=True)), x, None, None) == (
        5 * 4 * 2 * 8 * (3 + 8)
    )


def test_count_flops__default_model_grows_with_length_and_counts_the_lstm():
    model = build("qrcnn-lstm-cross", 32, 16)

    def flops(steps):
        return count_flops(
            model,
            torch.randn(1, steps, 32),
            torch.ones(1, steps, dtype=torch.bool),
            torch.randn(1, 16),
        )

    c = model.config
    lstm_only = 2 * 32 * 4 * c.hidden * (c.channels + c.hidden)
    assert flops(32) > lstm_only and flops(32) > flops(6)
    assert flops(32) < 10e6  # the ANCHORS.md bar: < 10 MFLOPs per customer
    assert model.training  # count_flops restores the mode it found
