"""Split rules: deterministic, stratified, ordered, group-level."""

from __future__ import annotations

import doctest

import numpy as np

from crmrisk.training.datasets import splits


def test_doctests():
    assert doctest.testmod(splits).failed == 0


def test_random_splits__deterministic_per_seed_and_stratified():
    labels = np.array([1] * 300 + [0] * 700)
    a, b, c = (splits.random_splits(labels, s) for s in (0, 0, 1))
    assert (a == b).all() and (a != c).any()
    assert {name: int((a == name).sum()) for name in ("train", "val", "test")} == {
        "train": 640,
        "val": 160,
        "test": 200,
    }
    for name in ("train", "val", "test"):
        assert labels[a == name].mean() == 0.3


def test_ordered_splits__val_precedes_test_and_follows_train():
    names = splits.ordered_splits(1000).tolist()
    assert names == ["train"] * 640 + ["val"] * 160 + ["test"] * 200


def test_group_splits__whole_groups_go_to_validation():
    groups = [f"c{i % 50}" for i in range(500)]
    names = splits.group_splits(groups, seed=0)
    val_groups = {g for g, n in zip(groups, names, strict=True) if n == "val"}
    train_groups = {g for g, n in zip(groups, names, strict=True) if n == "train"}
    assert len(val_groups) == 10 and not val_groups & train_groups
    assert (splits.group_splits(groups, seed=0) == names).all()
