import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from crmrisk.training.baselines import BASELINES, fit_baseline, fit_lightgbm_quantiles, flatten


def _data(n, seed):
    rng = np.random.default_rng(seed)
    events = rng.normal(size=(n, 4, 3)).astype(np.float32)
    mask = np.arange(4)[None] < rng.integers(1, 5, n)[:, None]
    events[~mask] = 0
    profile = rng.normal(size=(n, 2)).astype(np.float32)
    score = (events[..., 0] * mask).sum(1) + profile[:, 0]
    label = (score + 0.5 * rng.normal(size=n) > 0).astype(int)
    return flatten(events, mask, profile), label, score


def test_flatten__zeroes_padding_and_keeps_mask():
    events = np.ones((2, 3, 2), np.float32)
    mask = np.array([[True, False, False], [True, True, True]])
    x = flatten(events, mask, np.full((2, 1), 7.0, np.float32))
    assert x.shape == (2, 3 * 2 + 3 + 1)
    assert x[0, :6].tolist() == [1, 1, 0, 0, 0, 0]
    assert x[0, 6:9].tolist() == [1, 0, 0]
    assert x[1, -1] == 7.0


def test_flatten__rejects_misaligned_mask():
    with pytest.raises(ValueError, match="line up"):
        flatten(np.zeros((2, 3, 1)), np.zeros((2, 4), bool), np.zeros((2, 1)))


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_fit_baseline__learns_a_learnable_signal(name):
    x_tr, y_tr, _ = _data(600, 0)
    x_val, y_val, _ = _data(200, 1)
    x_te, y_te, _ = _data(200, 2)
    result = fit_baseline(name, x_tr, y_tr, x_val, y_val, x_te, seed=0, trials=5)
    assert result.p_test.shape == (200,)
    assert roc_auc_score(y_te, result.p_test) > (0.68 if name == "decision_tree" else 0.75)
    assert result.train_seconds >= 0


def test_fit_baseline__unknown_name():
    with pytest.raises(ValueError, match="unknown baseline"):
        fit_baseline("svm", *([np.zeros((2, 1))] * 2), None, None, None, seed=0)


def test_fit_lightgbm_quantiles__one_column_per_level():
    x_tr, _, t_tr = _data(600, 0)
    x_val, _, t_val = _data(200, 1)
    x_te, _, t_te = _data(200, 2)
    q = fit_lightgbm_quantiles(x_tr, t_tr, x_val, t_val, x_te, (0.1, 0.5, 0.9), seed=0)
    assert q.shape == (200, 3)
    # Columns follow the levels: on average q10 < q50 < q90, and the median splits the data.
    assert q[:, 0].mean() < q[:, 1].mean() < q[:, 2].mean()
    assert 0.3 < (t_te <= q[:, 1]).mean() < 0.7
