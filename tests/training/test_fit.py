"""The fit loop: early stopping, seeding, quantile heads, the target transform, predict."""

import copy

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from crmrisk import model
from crmrisk.training.fit import FitConfig, fit, predict, quantile_levels, target_transform


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


def test_fit__learns_and_keeps_the_best_validation_epoch(make_arrays):
    torch.set_num_threads(1)
    train, val = make_arrays(600, 0), make_arrays(200, 1)
    net = _small()
    result = fit(net, train, val, _config())
    assert result.best_score == max(h["val"] for h in result.history)
    assert result.history[result.best_epoch - 1]["val"] == result.best_score
    # The weights left in the model are the best epoch's: predicting again gives that AUC.
    auc = roc_auc_score(val.label, predict(net, val).probability)
    assert auc == pytest.approx(result.best_score, abs=1e-6)
    assert auc > 0.8


def test_fit__stops_early_when_validation_stops_improving(make_arrays):
    train, val = make_arrays(300, 0), make_arrays(100, 1)
    result = fit(_small(), train, val, _config(epochs=50, patience=1, learning_rate=5e-2))
    assert result.epochs_run < 50
    assert result.epochs_run - result.best_epoch <= 1


def test_fit__same_seed_same_model(make_arrays):
    train, val = make_arrays(300, 0), make_arrays(100, 1)
    outs = []
    for _ in range(2):
        torch.manual_seed(123)  # build draws from the global generator
        net = _small()
        fit(net, train, val, _config(epochs=2))
        outs.append(predict(net, val).probability)
    np.testing.assert_array_equal(outs[0], outs[1])


def test_fit__quantile_heads_learn_the_target_in_its_own_units(make_arrays):
    train, val = make_arrays(800, 0, target=True), make_arrays(300, 1, target=True)
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


def test_fit__ema_keeps_a_moving_average_of_the_weights(make_arrays):
    torch.set_num_threads(1)
    train, val = make_arrays(300, 0), make_arrays(100, 1)
    plain = _small()
    nearly_plain, averaged = copy.deepcopy(plain), copy.deepcopy(plain)  # one initialisation
    fit(plain, train, val, _config(epochs=3, patience=5))
    # A decay of ~0 averages nothing: the very weights of the plain fit (no RNG is consumed).
    fit(nearly_plain, train, val, _config(epochs=3, patience=5, ema_decay=1e-12))
    result = fit(averaged, train, val, _config(epochs=3, patience=5, ema_decay=0.9))
    for a, b in zip(plain.state_dict().values(), nearly_plain.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-6)
    assert any(
        not torch.allclose(a.float(), b.float(), atol=1e-4)
        for a, b in zip(plain.state_dict().values(), averaged.state_dict().values(), strict=True)
    )
    # What was validated is what is kept.
    auc = roc_auc_score(val.label, predict(averaged, val).probability)
    assert auc == pytest.approx(result.best_score, abs=1e-6)


def test_fit__refuses_a_decay_outside_0_1(make_arrays):
    with pytest.raises(ValueError, match="ema_decay"):
        fit(_small(), make_arrays(20, 0), make_arrays(20, 1), _config(epochs=1, ema_decay=1.5))
