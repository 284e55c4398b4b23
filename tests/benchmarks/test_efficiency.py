import numpy as np
import torch

from benchmarks.tables.efficiency import count_flops, count_parameters, measure_efficiency


class _ProfileLinear(torch.nn.Module):
    """Scores from the profile alone: exactly 2 * P * H FLOPs per customer (matmul)."""

    def __init__(self, profile_dim: int, hidden: int) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(profile_dim, hidden, bias=False)

    def forward(self, events, mask, profile):
        return self.linear(profile).sum(-1)


class _Recurrent(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = torch.nn.LSTM(3, 8, batch_first=True)

    def forward(self, events, mask, profile):
        return self.lstm(events)[0][:, -1].sum(-1)


def _arrays(n=16, t=5, e=3, p=4):
    rng = np.random.default_rng(0)
    mask = np.arange(t)[None] < rng.integers(1, t + 1, n)[:, None]
    return (
        rng.normal(size=(n, t, e)).astype(np.float32),
        mask,
        rng.normal(size=(n, p)).astype(np.float32),
    )


def test_count_flops__matches_a_linear_layer_per_customer():
    model = _ProfileLinear(4, 10)
    events, mask, profile = (torch.as_tensor(a) for a in _arrays())
    assert count_flops(model, events, mask, profile) == 2 * 4 * 10


def test_count_flops__counts_the_cpu_lstm_gates():
    events, mask, profile = (torch.as_tensor(a) for a in _arrays(t=5))
    # 5 steps x 4 gates x 2 x hidden 8 x (input 3 + hidden 8)
    assert count_flops(_Recurrent(), events, mask, profile) == 5 * 4 * 2 * 8 * (3 + 8)


def test_measure_efficiency__reports_every_figure():
    model = _ProfileLinear(4, 10)
    eff = measure_efficiency(
        model, *_arrays(), batch_size=64, latency_repeats=20, throughput_seconds=0.05
    )
    assert eff.parameters == count_parameters(model) == 40
    assert eff.flops_per_customer == 80
    assert 0 < eff.latency_p50_ms <= eff.latency_p99_ms
    assert eff.throughput_per_s > 0
    assert eff.batch_size == 64 and eff.device == "cpu"
