"""The publishing job's ``evaluate``: rows go to the model's device, on CPU and CUDA."""

import pytest
import torch

from crmrisk import model
from crmrisk.training.crossfit import fit_model
from crmrisk.training.data import DomainData
from crmrisk.training.fit import FitConfig, predict
from crmrisk.training.train_job import evaluate


def _config(**kw) -> FitConfig:
    base = dict(epochs=6, batch_size=64, learning_rate=1e-2, patience=3, seed=0)
    return FitConfig(**{**base, **kw})


class _Recording(torch.nn.Module):
    """A model on ``meta`` that records where its inputs arrive and answers on the CPU."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1, device="meta"))
        self.devices: set[str] = set()

    def forward(self, events, mask, profile):
        self.devices |= {x.device.type for x in (events, mask, profile)}
        n = events.shape[0]
        return model.RiskOutput(
            torch.zeros(n), torch.full((n,), 0.5), None, torch.zeros(n, events.shape[1])
        )


def test_predict__hands_the_model_its_rows_on_the_models_device(make_arrays):
    # Issue 18: trained on a GPU, ``evaluate`` -> ``predict`` sent rows from the CPU.
    data = DomainData(make_arrays(30, 0), make_arrays(20, 1), make_arrays(20, 2))
    recording = _Recording()
    assert predict(recording, data.val).probability.shape == (20,)
    metrics = evaluate(recording, data, "none", 1.0)
    assert recording.devices == {"meta"} and "test" in metrics


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fit_model__on_cuda_trains_evaluates_and_calibrates_there(make_arrays):
    train, val, test = make_arrays(600, 0), make_arrays(200, 1), make_arrays(200, 2)
    net = model.build("qrcnn-lstm-cross", 3, 2, (), members=2, channels=8, hidden=8,
                      summary_dim=8, d_k=8, profile_hidden=8, head_hidden=8)  # fmt: skip
    fitted = fit_model(net, train, val, _config(device="cuda"))
    assert {t.device.type for t in [*net.parameters(), *net.buffers()]} == {"cuda"}
    metrics = evaluate(net, DomainData(train, val, test), "none", 1.0, fitted)
    assert metrics["test"]["auc"] > 0.8
