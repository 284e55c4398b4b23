"""The fit loop and predict (and the data splits and ``evaluate`` they feed)."""

import numpy as np
import pytest
import torch

import model
from training.crossfit import fit_model
from training.data import Arrays, subsample
from training.data import DomainData as _DomainData
from training.fit import FitConfig, fit, predict, quantile_levels, target_transform
from training.train_job import evaluate


def _arrays(n: int, seed: int, target: bool = False) -> Arrays:
    """Customers whose label follows the sum of their first event feature (a learnable rule)."""
    rng = np.random.default_rng(seed)
    events = rng.normal(size=(n, 5, 3)).astype(np.float32)
    lengths = rng.integers(1, 6, n)
    mask = np.arange(5)[None] < lengths[:, None]
    events[~mask] = 0
    profile = rng.normal(size=(n, 2)).astype(np.float32)
    score = (events[..., 0] * mask).sum(1) + profile[:, 0]
    label = (score + 0.3 * rng.normal(size=n) > 0).astype(np.int64)
    spend = np.exp(1 + 0.5 * score + 0.3 * rng.normal(size=n)) if target else None
    return Arrays(events, mask, profile, label, spend)


def _config(**kw) -> FitConfig:
    base = dict(epochs=6, batch_size=64, learning_rate=1e-2, patience=3, seed=0)
    return FitConfig(**{**base, **kw})


def _small(variant="qrcnn-lstm-cross", quantiles=()):
    return model.build(
        variant,
        3,
        2,
        quantiles=quantiles,
        channels=8,
        hidden=8,
        summary_dim=8,
        d_k=8,
        profile_hidden=8,
        head_hidden=8,
        members=1,
    )


def test_fit__learns_and_keeps_the_best_validation_epoch():
    torch.set_num_threads(1)
    train, val = _arrays(600, 0), _arrays(200, 1)
    net = _small()
    result = fit(net, train, val, _config())
    assert result.best_score == max(h["val"] for h in result.history)
    assert result.history[result.best_epoch - 1]["val"] == result.best_score
    # The weights left in the model are the best epoch's: predicting again gives that AUC.
    from sklearn.metrics import roc_auc_score

    auc = roc_auc_score(val.label, predict(net, val).probability)
    assert auc == pytest.approx(result.best_score, abs=1e-6)
    assert auc > 0.8


def test_fit__stops_early_when_validation_stops_improving():
    train, val = _arrays(300, 0), _arrays(100, 1)
    result = fit(_small(), train, val, _config(epochs=50, patience=1, learning_rate=5e-2))
    assert result.epochs_run < 50
    assert result.epochs_run - result.best_epoch <= 1


def test_fit__same_seed_same_model():
    train, val = _arrays(300, 0), _arrays(100, 1)
    outs = []
    for _ in range(2):
        torch.manual_seed(123)  # build draws from the global generator
        net = _small()
        fit(net, train, val, _config(epochs=2))
        outs.append(predict(net, val).probability)
    np.testing.assert_array_equal(outs[0], outs[1])


def test_fit__quantile_heads_learn_the_target_in_its_own_units():
    train, val = _arrays(800, 0, target=True), _arrays(300, 1, target=True)
    net = _small(quantiles=(0.1, 0.5, 0.9))
    assert quantile_levels(net) == (0.1, 0.5, 0.9)
    result = fit(net, train, val, _config(epochs=15, target_transform="log1p", monitor="loss"))
    pred = predict(net, val, target_kind="log1p", target_scale=result.target_scale)
    q = pred.quantiles
    assert q.shape == (300, 3)
    assert (np.diff(q, axis=1) >= 0).all()  # no crossing
    covered = ((val.target >= q[:, 0]) & (val.target <= q[:, 2])).mean()
    assert 0.6 < covered < 0.95  # nominal 0.8
    below_median = (val.target <= q[:, 1]).mean()
    assert 0.35 < below_median < 0.65


def test_target_transform__log1p_clips_negative_spend():
    np.testing.assert_allclose(
        target_transform(np.array([-5.0, 0.0, np.e - 1]), "log1p"), [0.0, 0.0, 1.0]
    )


def test_arrays__rejects_misaligned_inputs():
    a = _arrays(10, 0)
    with pytest.raises(ValueError, match="mask"):
        Arrays(a.events, a.mask[:, :2], a.profile, a.label)
    with pytest.raises(ValueError, match="profile"):
        Arrays(a.events, a.mask, a.profile[:5], a.label)


def test_subsample__caps_every_split():
    data = _DomainData(_arrays(50, 0), _arrays(30, 1), _arrays(8, 2))
    small = subsample(data, 10, seed=0)
    assert (len(small.train), len(small.val), len(small.test)) == (10, 10, 8)
    assert subsample(data, None, 0) is data


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


def test_predict__hands_the_model_its_rows_on_the_models_device():
    # Issue 18: trained on a GPU, ``evaluate`` -> ``predict`` sent rows from the CPU.
    data = _DomainData(_arrays(30, 0), _arrays(20, 1), _arrays(20, 2))
    recording = _Recording()
    assert predict(recording, data.val).probability.shape == (20,)
    metrics = evaluate(recording, data, "none", 1.0)
    assert recording.devices == {"meta"} and "test" in metrics


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fit_model__on_cuda_trains_evaluates_and_calibrates_there():
    train, val, test = _arrays(600, 0), _arrays(200, 1), _arrays(200, 2)
    net = model.build("qrcnn-lstm-cross", 3, 2, (), members=2, channels=8, hidden=8,
                      summary_dim=8, d_k=8, profile_hidden=8, head_hidden=8)  # fmt: skip
    fitted = fit_model(net, train, val, _config(device="cuda"))
    assert {t.device.type for t in [*net.parameters(), *net.buffers()]} == {"cuda"}
    metrics = evaluate(net, _DomainData(train, val, test), "none", 1.0, fitted)
    assert metrics["test"]["auc"] > 0.8
