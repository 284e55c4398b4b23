"""``training.tune``: a fixed budget of Optuna trials on validation, test rows never read."""

from __future__ import annotations

from dataclasses import replace

import pytest

from crmrisk.training.data import DomainData
from crmrisk.training.fit import FitConfig
from crmrisk.training.tune import suggest, tune

pytest.importorskip("optuna")


class _Untouchable:
    """Stands in for the test split: any use of it fails the test."""

    def __getattr__(self, name):
        raise AssertionError(f"tuning read the test split ({name})")

    def __len__(self):
        raise AssertionError("tuning read the test split (len)")


def test_tune__runs_the_budget_on_validation_and_returns_the_best_trial(make_arrays):
    data = DomainData(make_arrays(120, 0), make_arrays(60, 1), make_arrays(10, 2))
    data = replace(data, test=_Untouchable())
    config = FitConfig(epochs=2, batch_size=32, learning_rate=1e-2, patience=1, seed=3)
    heard = []
    tuned = tune(data, "qrcnn-lstm-cross", config, 3, lambda n, auc: heard.append((n, auc)))
    assert [n for n, _ in heard] == [0, 1, 2] and len(tuned.trials) == 3
    assert tuned.val_auc == max(t["val_auc"] for t in tuned.trials)
    best = next(t for t in tuned.trials if t["val_auc"] == tuned.val_auc)
    assert tuned.learning_rate == best["learning_rate"]
    assert tuned.weight_decay == best["weight_decay"]
    assert tuned.overrides["dropout"] == best["dropout"]
    assert tuned.overrides["head_members"] == best["head_members"] in (1, 8)
    assert 3e-4 <= tuned.learning_rate <= 1e-2 and 0.0 <= tuned.overrides["dropout"] <= 0.4
    assert tuned.to_dict()["trials"] == tuned.trials


def test_tune__the_same_seed_draws_the_same_trials(make_arrays):
    data = DomainData(make_arrays(80, 0), make_arrays(40, 1), make_arrays(10, 2))
    config = FitConfig(epochs=1, batch_size=32, learning_rate=1e-2, patience=1, seed=5)
    first = tune(data, "qrcnn-lstm-cross", config, 2)
    second = tune(data, "qrcnn-lstm-cross", config, 2)
    strip = [{k: v for k, v in t.items() if k != "seconds"} for t in first.trials]
    assert strip == [{k: v for k, v in t.items() if k != "seconds"} for t in second.trials]


def test_suggest__every_width_keeps_the_qrcnn_channels_a_multiple_of_its_kernels():
    import optuna

    for width in ("narrow", "default", "wide"):
        fixed = {"width": width, "dropout": 0.1, "head_members": 8, "learning_rate": 1e-3,
                 "weight_decay": 1e-2}  # fmt: skip
        overrides, optimiser = suggest(optuna.trial.FixedTrial(fixed))
        assert overrides["channels"] % 4 == 0 and optimiser["learning_rate"] == 1e-3


def test_tune__needs_a_trial(make_arrays):
    data = DomainData(make_arrays(20, 0), make_arrays(20, 1), make_arrays(10, 2))
    config = FitConfig(epochs=1, batch_size=32, learning_rate=1e-2, patience=1, seed=0)
    with pytest.raises(ValueError, match="at least one trial"):
        tune(data, "qrcnn-lstm-cross", config, 0)
