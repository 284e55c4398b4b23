import numpy as np
import torch

from benchmarks.tables.efficiency import count_parameters, measure_efficiency


class _ProfileLinear(torch.nn.Module):
    """Scores from the profile alone: exactly 2 * P * H FLOPs per customer (matmul)."""

    def __init__(self, profile_dim: int, hidden: int) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(profile_dim, hidden, bias=False)

    def forward(self, events, mask, profile):
        return self.linear(profile).sum(-1)


def _arrays(n=16, t=5, e=3, p=4):
    rng = np.random.default_rng(0)
    mask = np.arange(t)[None] < rng.integers(1, t + 1, n)[:, None]
    return (
        rng.normal(size=(n, t, e)).astype(np.float32),
        mask,
        rng.normal(size=(n, p)).astype(np.float32),
    )


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
