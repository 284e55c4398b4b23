"""Cross-fitting: folds by customer, out-of-fold predictions, calibration stored in the model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from crmrisk import model
from crmrisk.training.crossfit import fit_model, folds, recalibrate
from crmrisk.training.data import Arrays
from crmrisk.training.fit import FitConfig, predict


def _arrays(n: int, seed: int, target: bool = False, base: float = 0.0) -> Arrays:
    rng = np.random.default_rng(seed)
    events = rng.normal(size=(n, 4, 3)).astype(np.float32)
    mask = np.arange(4)[None] < rng.integers(1, 5, n)[:, None]
    events[~mask] = 0
    profile = rng.normal(size=(n, 2)).astype(np.float32)
    score = (events[..., 0] * mask).sum(1) + profile[:, 0] + base
    label = (score + 0.5 * rng.normal(size=n) > 0).astype(np.int64)
    spend = np.exp(1 + 0.4 * score + 0.5 * rng.normal(size=n)) if target else None
    ids = [f"c{seed}-{i}" for i in range(n)]
    return Arrays(events, mask, profile, label, spend, ids)


def _net(quantiles=()) -> model.RiskModel:
    return model.build(
        "qrcnn-lstm-cross", 3, 2, quantiles, seed=0, channels=8, hidden=8, summary_dim=8
    )


CONFIG = FitConfig(epochs=8, batch_size=64, learning_rate=1e-2, patience=3, seed=0)


def test_folds__stratified_and_never_split_a_customer():
    labels = np.array([0, 1] * 30)
    groups = [f"c{i // 2}" for i in range(60)]  # each customer has two rows
    fold = folds(labels, groups, 3, seed=0)
    assert set(fold.tolist()) == {0, 1, 2}
    for i in range(0, 60, 2):
        assert fold[i] == fold[i + 1]
    with pytest.raises(ValueError, match="2 folds"):
        folds(labels, None, 1, seed=0)


def test_fit_model__members_train_on_other_folds_and_calibrate_out_of_fold():
    torch.set_num_threads(1)
    train, val, test = _arrays(600, 0), _arrays(200, 1), _arrays(400, 2)
    net = _net()
    fitted = fit_model(net, train, val, CONFIG)
    assert fitted.cross_fitted and len(fitted.best_epochs) == 3
    # The members differ (trained on other rows) and the average scores unseen customers well.
    first, second = (m(*_tensors(test)).logit for m in net.members[:2])
    assert not torch.allclose(first, second)
    assert roc_auc_score(test.label, predict(net, test).probability) > 0.8
    # Validation outputs are out-of-fold: worse than the in-sample scores of the same rows.
    in_sample = predict(net, val).probability
    assert roc_auc_score(val.label, fitted.val_probability) < roc_auc_score(val.label, in_sample)
    assert fitted.calibration["platt_scale"] == pytest.approx(float(net.calibration[0]))


def test_fit_model__conformal_margin_brings_quantile_coverage_to_nominal():
    torch.set_num_threads(1)
    train, val = _arrays(700, 0, target=True), _arrays(300, 1, target=True)
    test = _arrays(3000, 2, target=True)
    net = _net((0.1, 0.5, 0.9))
    config = FitConfig(
        epochs=3, batch_size=64, learning_rate=1e-2, patience=2, seed=0, monitor="loss",
        target_transform="log1p",
    )  # fmt: skip
    fitted = fit_model(net, train, val, config)
    q = predict(net, test, target_kind="log1p", target_scale=fitted.target_scale).quantiles
    covered = ((test.target >= q[:, 0]) & (test.target <= q[:, 2])).mean()
    assert 0.75 <= covered <= 0.85
    assert (np.diff(q, axis=1) >= 0).all()
    assert "interval_margin" in fitted.calibration


def test_recalibrate__follows_a_shifted_base_rate_without_reordering():
    torch.set_num_threads(1)
    net = _net()
    fit_model(net, _arrays(600, 0), _arrays(200, 1), CONFIG)
    shifted = _arrays(2000, 3, base=1.5)  # many more positives than in training
    before = predict(net, shifted).probability
    recalibrate(net, shifted)
    after = predict(net, shifted).probability
    assert abs(after.mean() - shifted.label.mean()) < abs(before.mean() - shifted.label.mean())
    assert abs(after.mean() - shifted.label.mean()) < 0.03
    # Monotone: the ranking is the same (up to float32 ties near 1).
    auc = roc_auc_score(shifted.label, before)
    assert roc_auc_score(shifted.label, after) == pytest.approx(auc, abs=2e-3)


def _tensors(a: Arrays):
    return torch.as_tensor(a.events), torch.as_tensor(a.mask), torch.as_tensor(a.profile)
